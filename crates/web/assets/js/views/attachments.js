// Files: those a message carries (images as thumbnails, anything else as a download
// button), and those the composer has uploaded for the next message.

import { h, replace } from "../dom.js";
import { isImage } from "../files.js";
import { humanSize } from "../format.js";

// The box a thumbnail fits in (CSS pixels); smaller images keep their size.
const THUMB_PX = 240;
// What one message may carry (the API refuses more).
export const MAX_FILES = 10;

/** A thumbnail's size: the image's, scaled down into the box (null when unknown). */
function fit(width, height) {
  if (!(width > 0 && height > 0)) return [null, null];
  const scale = Math.min(1, THUMB_PX / Math.max(width, height));
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

/**
 * Calls `load()` of an element once it comes near the visible part of `root` (a
 * scrolling list): images are fetched when they are about to be seen, not all at once.
 * `disconnect()` when the list goes.
 */
export function lazyLoader(root) {
  const loads = new WeakMap();
  const observer = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        observer.unobserve(entry.target);
        loads.get(entry.target)?.();
      }
    },
    { root, rootMargin: "400px 0px" },
  );
  return {
    whenShown(el, load) {
      loads.set(el, load);
      observer.observe(el);
    },
    disconnect: () => observer.disconnect(),
  };
}

/**
 * The files of a message (null when none). `files` (the client's Files) fetches their
 * bytes, `whenShown(el, load)` says when an image is worth fetching (see lazyLoader);
 * a press saves a file, and `fileFailed(attachment, error)` is told when that fails.
 */
export function attachmentList(attachments, { files, whenShown, fileFailed }) {
  if (!attachments?.length) return null;
  const save = (a) => files.save(a).catch((error) => fileFailed(a, error));
  return h(
    "ul",
    { class: "attachments", "aria-label": "Attached files" },
    attachments.map((a) => h("li", {}, isImage(a) ? image(a, files, whenShown, save) : file(a, save))),
  );
}

function image(a, files, whenShown, save) {
  const [width, height] = fit(a.width, a.height);
  // The size is known before the bytes: the space is kept, nothing jumps when it loads.
  const img = h("img", { alt: a.filename, width, height, decoding: "async" });
  whenShown(img, () =>
    files.url(a).then(
      (url) => {
        img.src = url;
      },
      () => img.classList.add("failed"),
    ),
  );
  const label = `${a.filename}, ${humanSize(a.size)}: download`;
  return h(
    "button",
    { type: "button", class: "attachment-image", title: label, "aria-label": label, on: { click: () => save(a) } },
    img,
  );
}

function file(a, save) {
  return h(
    "button",
    { type: "button", class: "attachment-file", title: `Download ${a.filename}`, on: { click: () => save(a) } },
    h("span", { "aria-hidden": "true" }, "📄 "),
    h("span", { class: "visually-hidden" }, "Download "),
    h("span", { class: "attachment-name" }, a.filename),
    " ",
    h("span", { class: "attachment-size" }, humanSize(a.size)),
  );
}

/** The names of the files a message being sent carries (null when none). */
export function pendingFiles(attachments) {
  if (!attachments?.length) return null;
  return h("p", { class: "attachment-names" }, `📎 ${attachments.map((a) => a.filename).join(", ")}`);
}

/**
 * The composer's files: an Attach button opening the file picker, each file uploaded
 * at once and shown as a chip (name, size, state, ✕) until a message takes them.
 * `changed()` is called whenever what can be sent changes; `failed(text)` tells of a
 * file that could not be uploaded.
 */
export class Uploads {
  /** [{key, file, attachment (null while it uploads)}], in the order chosen. */
  #items = [];
  #next = 0;

  constructor(client, chatId, { changed, failed }) {
    this.client = client;
    this.chatId = chatId;
    this.changed = changed;
    this.failed = failed;
    this.input = h("input", {
      type: "file",
      multiple: true,
      class: "attach-input",
      hidden: true,
      tabindex: "-1",
      "aria-label": "Files to attach",
      on: {
        change: () => {
          this.add([...this.input.files]);
          this.input.value = "";
        },
      },
    });
    this.button = h(
      "button",
      { type: "button", class: "secondary attach-button", title: "Attach files", on: { click: () => this.input.click() } },
      h("span", { "aria-hidden": "true" }, "📎 "),
      "Attach",
    );
    this.list = h("ul", { class: "pending-attachments", "aria-label": "Files for the next message", hidden: true });
  }

  /** Uploads files (each at once); beyond MAX_FILES they are refused here. */
  add(files) {
    const room = MAX_FILES - this.#items.length;
    if (files.length > room) {
      this.failed(`A message carries at most ${MAX_FILES} files: ${files.slice(Math.max(room, 0)).map((f) => f.name).join(", ")} left out.`);
    }
    for (const file of files.slice(0, Math.max(room, 0))) {
      const item = { key: this.#next++, file, attachment: null };
      this.#items.push(item);
      this.client.upload(this.chatId, file).then(
        (attachment) => {
          // Removed while it uploaded: left unsent (the server drops it after a day).
          if (!this.#items.includes(item)) return;
          item.attachment = attachment;
          this.#render();
        },
        (error) => {
          if (!this.#items.includes(item)) return;
          this.#remove(item);
          this.failed(
            error.status === 413
              ? `${file.name} is too large: ${error.detail}`
              : `${file.name} was not uploaded: ${error.message}`,
          );
        },
      );
    }
    this.#render();
  }

  /** Whether a file is still uploading. */
  get busy() {
    return this.#items.some((item) => !item.attachment);
  }

  /** The uploaded files, ready to go with a message. */
  get ready() {
    return this.#items.filter((item) => item.attachment).map((item) => item.attachment);
  }

  /** Takes the uploaded files for a message: they leave the composer. */
  take() {
    const ready = this.ready;
    this.#items = this.#items.filter((item) => !item.attachment);
    this.#render();
    return ready;
  }

  #remove(item) {
    this.#items = this.#items.filter((i) => i !== item);
    this.#render();
  }

  #render() {
    replace(
      this.list,
      this.#items.map((item) =>
        h(
          "li",
          { class: "pending-attachment", dataset: { state: item.attachment ? "ready" : "uploading" } },
          h("span", { class: "attachment-name" }, item.file.name),
          " ",
          h("span", { class: "attachment-size" }, item.attachment ? humanSize(item.attachment.size) : "uploading…"),
          h(
            "button",
            {
              type: "button",
              class: "link",
              "aria-label": `Remove ${item.file.name}`,
              title: `Remove ${item.file.name}`,
              on: {
                click: () => {
                  this.#remove(item);
                  this.button.focus();
                },
              },
            },
            "✕",
          ),
        ),
      ),
    );
    this.list.hidden = this.#items.length === 0;
    this.changed();
  }
}
