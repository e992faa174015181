// The chat list: latest activity first, unread and mention badges, last message,
// presence dots.

import { h, reconcile, replace } from "../dom.js";
import { shortWhen } from "../format.js";
import { busy, field, formError, values } from "./forms.js";

function preview(store, chat) {
  const last = chat.last_message;
  if (!last) return chat.kind === "group" ? chat.description || "No messages yet" : "No messages yet";
  const who = last.sender_id === store.me?.id ? "You" : last.sender ?? "Someone";
  const files = last.attachments ?? [];
  const attached = files.length === 1 ? `📎 ${files[0].filename}` : files.length ? `📎 ${files.length} files` : "";
  const text = last.deleted_at ? "message deleted" : last.content || attached;
  return `${who}: ${text}`;
}

/** A presence dot for a user: online, offline, or unknown (not heard of yet). */
export function presenceDot(store, userId) {
  const known = store.presence.get(userId);
  const state = known ? (known.online ? "online" : "offline") : "unknown";
  const label = { online: "online", offline: "offline", unknown: "presence unknown" }[state];
  return h("span", { class: `presence ${state}`, role: "img", "aria-label": label, title: label });
}

/** Everything an item shows: it is redrawn when this changes. */
function itemKey(store, chat, selected) {
  const partner = store.partner(chat);
  const presence = partner ? store.presence.get(partner.user_id) : null;
  return JSON.stringify([
    chat.id,
    store.title(chat),
    chat.visibility,
    chat.last_activity_at,
    chat.unread_count,
    chat.unread_mentions ?? 0,
    chat.muted ?? false,
    preview(store, chat),
    presence?.online ?? null,
    selected,
  ]);
}

function item(store, chat, selected) {
  const partner = store.partner(chat);
  const unread = chat.unread_count ?? 0;
  const mentions = chat.unread_mentions ?? 0;
  const title = store.title(chat);
  return h(
    "li",
    {},
    h(
      "a",
      {
        class: `chat-item${unread ? " has-unread" : ""}`,
        href: `#/chats/${chat.id}`,
        dataset: { chatId: chat.id },
        "aria-current": selected ? "page" : null,
      },
      h(
        "span",
        { class: "avatar", "aria-hidden": "true" },
        (title[0] ?? "?").toUpperCase(),
      ),
      partner ? presenceDot(store, partner.user_id) : null,
      h(
        "span",
        { class: "chat-item-body" },
        h(
          "span",
          { class: "chat-item-top" },
          h("span", { class: "chat-title" }, title),
          chat.kind === "group" ? h("span", { class: "kind" }, chat.visibility === "public" ? "public group" : "group") : null,
          chat.muted ? h("span", { class: "kind muted", title: "Muted" }, "muted") : null,
          chat.last_activity_at
            ? h("time", { class: "when", datetime: chat.last_activity_at }, shortWhen(chat.last_activity_at))
            : null,
        ),
        h("span", { class: "chat-preview" }, preview(store, chat)),
      ),
      mentions
        ? h(
            "span",
            {
              class: `mention-badge${chat.muted ? " muted" : ""}`,
              "aria-label": `${mentions} unread mention${mentions === 1 ? "" : "s"} of you`,
            },
            `@${mentions > 99 ? "99+" : mentions}`,
          )
        : null,
      unread
        ? h(
            "span",
            { class: `badge${chat.muted ? " muted" : ""}`, "aria-label": `${unread} unread message${unread === 1 ? "" : "s"}` },
            unread > 99 ? "99+" : String(unread),
          )
        : null,
    ),
  );
}

export class ChatList {
  constructor(client) {
    this.client = client;
    this.selected = null;
    /** key → `<li>` of the list, reused while unchanged. */
    this.nodes = new Map();
    this.list = h("ul", { class: "chat-list", id: "chat-list", "aria-label": "Your chats" });
    this.empty = h(
      "p",
      { class: "empty" },
      "No chats yet. Find friends or join a group to start one.",
    );
    this.searchForm = h(
      "form",
      { class: "search-form message-search", role: "search", id: "message-search-form" },
      field("Search messages", { name: "q", type: "search", id: "message-search", autocomplete: "off" }),
      h("button", { type: "submit", class: "secondary" }, "Find"),
      formError(),
    );
    this.results = h("ul", { class: "message-results", id: "message-results", "aria-label": "Messages found", hidden: true });
    this.searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.searchMessages(values(this.searchForm).q.trim());
    });
    this.el = h("section", { class: "panel chats-panel", "aria-labelledby": "chats-title" },
      h("h2", { id: "chats-title", class: "visually-hidden" }, "Chats"),
      this.searchForm,
      this.results,
      this.list,
      this.empty,
    );
    this.onChange = (event) => {
      const kind = event.detail.kind;
      if (kind === "chats" || kind === "presence" || kind === "reset") this.render();
    };
    client.store.addEventListener("change", this.onChange);
    this.render();
  }

  /** Shows the messages of my chats that hold the words of `q` (none: hides them). */
  async searchMessages(q) {
    if (!q) {
      this.results.hidden = true;
      replace(this.results);
      return;
    }
    const button = this.searchForm.querySelector("button[type=submit]");
    const page = await busy(button, "Finding…", this.searchForm, () => this.client.searchMessages(q));
    if (!page) return;
    const store = this.client.store;
    replace(
      this.results,
      page.items.length
        ? page.items.map((message) => {
            const chat = store.chats.get(message.chat_id);
            return h(
              "li",
              {},
              h(
                "a",
                { class: "message-hit", href: `#/chats/${message.chat_id}`, dataset: { chatId: message.chat_id, messageId: message.id } },
                h("span", { class: "hit-chat" }, chat ? store.title(chat) : `Chat ${message.chat_id}`),
                h("span", { class: "hit-text" }, `${message.sender ?? "Someone"}: ${message.content}`),
              ),
            );
          })
        : h("li", { class: "empty" }, `No message holds “${q}”.`),
    );
    this.results.hidden = false;
  }

  select(chatId) {
    this.selected = chatId;
    this.render();
  }

  render() {
    const store = this.client.store;
    const chats = store.sortedChats();
    // A redrawn item that had keyboard focus keeps it.
    const focused = document.activeElement?.closest?.(".chat-item")?.dataset.chatId;
    this.nodes = reconcile(
      this.list,
      chats.map((chat) => {
        const selected = chat.id === this.selected;
        return [itemKey(store, chat, selected), () => item(store, chat, selected)];
      }),
      this.nodes,
    );
    this.empty.hidden = !store.chatsLoaded || chats.length > 0;
    const target = focused && this.list.querySelector(`[data-chat-id="${focused}"]`);
    if (target && document.activeElement !== target) target.focus();
  }

  destroy() {
    this.client.store.removeEventListener("change", this.onChange);
  }
}
