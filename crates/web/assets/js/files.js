// Attachments' bytes. A download needs the bearer token (the API takes no cookies), so
// an `<img src>` or a plain link cannot fetch one: the page fetches the bytes itself and
// shows them from an object URL (`blob:`, allowed by the page's img-src). Images are
// kept by attachment id while their chat is open (a redraw reuses them) and their URLs
// revoked when their message is deleted, the chat is left or the session ends.

import { h } from "./dom.js";

/** Raster types the server serves inline (`docs/api.md`, "Attachments"): shown as images. */
const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
// A downloaded file's URL lives this long (the browser reads it when the download starts).
const DOWNLOAD_URL_MS = 60_000;

export function isImage(attachment) {
  return IMAGE_TYPES.has(attachment.content_type);
}

/** The API path of an attachment's bytes (relative to /api/v1): only ever this one route. */
function pathOf(attachment) {
  const url = attachment.url ?? "";
  return /^\/api\/v1\/attachments\/\d+$/.test(url)
    ? url.slice("/api/v1".length)
    : `/attachments/${encodeURIComponent(attachment.id)}`;
}

export class Files {
  /** attachment id → {chatId, promise, url, gone}. */
  #kept = new Map();

  constructor(api) {
    this.api = api;
  }

  /** An object URL of an attachment's bytes, fetched once while kept. */
  url(attachment) {
    let entry = this.#kept.get(attachment.id);
    if (!entry) {
      entry = { chatId: attachment.chat_id, url: null, gone: false };
      const kept = entry;
      kept.promise = this.api.blob(pathOf(attachment)).then((blob) => {
        const url = URL.createObjectURL(blob);
        // Released while it loaded: nothing shows it any more.
        if (kept.gone) URL.revokeObjectURL(url);
        else kept.url = url;
        return url;
      });
      // A failure is not kept: the next redraw asks again.
      kept.promise.catch(() => this.#release(attachment.id, kept));
      this.#kept.set(attachment.id, kept);
    }
    return entry.promise;
  }

  /** Saves an attachment as a file (through a temporary `<a download>`). */
  async save(attachment) {
    const kept = this.#kept.get(attachment.id)?.url;
    // Saved as opaque bytes: even a blob: URL opened in a tab cannot render as a page.
    const bytes = kept ? null : await this.api.blob(pathOf(attachment));
    const url =
      kept ?? URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
    const link = h("a", { href: url, download: attachment.filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    if (!kept) setTimeout(() => URL.revokeObjectURL(url), DOWNLOAD_URL_MS);
  }

  /** Keeps, of chat `chatId`'s attachments, only those of `ids` (a Set); null: none. */
  keepOnly(chatId, ids = null) {
    for (const [id, entry] of this.#kept) {
      if (entry.chatId === chatId && !ids?.has(id)) this.#release(id, entry);
    }
  }

  /** Revokes everything (the session ended). */
  clear() {
    for (const [id, entry] of this.#kept) this.#release(id, entry);
  }

  #release(id, entry) {
    if (this.#kept.get(id) === entry) this.#kept.delete(id);
    entry.gone = true;
    if (entry.url) URL.revokeObjectURL(entry.url);
    entry.url = null;
  }
}
