// One open chat: its history (older pages load as you scroll up), live messages, the
// composer (send, reply, edit, attach files), typing notices and read markers.

import { h, reconcile, replace } from "../dom.js";
import { dayKey, fullTime } from "../format.js";
import { lazyLoader, Uploads } from "./attachments.js";
import { presenceDot } from "./chatlist.js";
import { MembersPanel } from "./members.js";
import { daySeparator, messageItem, messageKey, pendingItem } from "./message.js";

// Closer than this to the top loads older messages; to the bottom counts as "at the end".
const NEAR_TOP_PX = 150;
const NEAR_BOTTOM_PX = 60;
const MAX_CHARS = 4000;

/**
 * The lowercase usernames a message mentions, space-separated, from its member ids
 * ("*" when one of them is not known here: any `@name` is shown as a mention then).
 */
function mentionedNames(message, usernames) {
  if (message.deleted_at || !message.mentions?.length) return "";
  const names = [];
  for (const id of message.mentions) {
    const name = usernames.get(id);
    if (!name) return "*";
    names.push(name.toLowerCase());
  }
  return names.sort().join(" ");
}

function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return "Several people are typing…";
}

export class Conversation {
  /** key → element of the message list, reused across redraws. */
  #nodes = new Map();
  /** What the composer is doing besides sending: {kind: "reply" | "edit", message}. */
  #mode = null;
  #listeners = [];

  constructor(client, chatId) {
    this.client = client;
    this.store = client.store;
    this.chatId = chatId;

    this.title = h("h2", { id: "conversation-title" });
    this.subtitle = h("p", { class: "conv-sub" });
    this.leaveButton = h("button", { type: "button", class: "secondary", id: "leave-group", on: { click: () => this.#leave() } }, "Leave group");
    this.muteButton = h("button", { type: "button", class: "secondary", id: "mute-chat", "aria-pressed": "false", on: { click: () => this.#toggleMute() } }, "Mute");
    this.membersButton = h(
      "button",
      {
        type: "button",
        class: "secondary",
        id: "show-members",
        "aria-expanded": "false",
        "aria-controls": "members-panel",
        on: { click: () => this.toggleMembers() },
      },
      "Members",
    );
    this.header = h(
      "header",
      { class: "conv-head" },
      h("a", { class: "back", href: "#/chats", "aria-label": "Back to chats" }, "←"),
      h("div", { class: "conv-titles" }, this.title, this.subtitle),
      h("div", { class: "conv-actions" }, this.muteButton, this.membersButton, this.leaveButton),
    );
    this.membersPanel = null;
    this.olderButton = h("button", { type: "button", class: "link load-older", on: { click: () => this.#loadOlder() } }, "Load older messages");
    this.historyStart = h("p", { class: "history-start" }, "This is the beginning of the conversation.");
    this.list = h("ol", { class: "message-list", id: "message-list" });
    this.scroller = h(
      "div",
      { class: "messages", role: "log", "aria-labelledby": "conversation-title", tabindex: "0" },
      this.olderButton,
      this.historyStart,
      this.list,
    );
    // Images are fetched as they come near the visible part of the list.
    this.lazy = lazyLoader(this.scroller);
    this.error = h("p", { class: "conv-error", role: "alert" });
    this.typingLine = h("p", { class: "typing", id: "typing", "aria-live": "polite" });

    this.banner = h("div", { class: "composer-banner", hidden: true });
    this.input = h("textarea", {
      id: "composer-input",
      name: "message",
      rows: "1",
      maxlength: String(MAX_CHARS),
      placeholder: "Write a message",
      autocomplete: "off",
      "aria-describedby": "composer-help",
    });
    this.sendButton = h("button", { type: "submit", class: "primary", id: "send", disabled: true }, "Send");
    this.uploads = new Uploads(client, chatId, {
      changed: () => this.#updateSend(),
      failed: (text) => replace(this.error, text),
    });
    this.composer = h(
      "form",
      { class: "composer", id: "composer" },
      this.banner,
      this.uploads.list,
      h(
        "div",
        { class: "composer-row" },
        h("label", { for: "composer-input", class: "visually-hidden" }, "Message"),
        this.input,
        this.uploads.button,
        this.uploads.input,
        this.sendButton,
      ),
      h("p", { id: "composer-help", class: "visually-hidden" }, "Enter sends, Shift+Enter starts a new line, Escape cancels a reply or an edit."),
    );

    this.el = h(
      "section",
      { class: "conversation", id: "conversation", dataset: { chatId }, "aria-labelledby": "conversation-title" },
      this.header,
      this.scroller,
      this.error,
      this.typingLine,
      this.composer,
    );

    this.#listen(this.composer, "submit", (e) => {
      e.preventDefault();
      this.#submit();
    });
    this.#listen(this.input, "keydown", (e) => this.#onKey(e));
    this.#listen(this.input, "input", () => {
      this.#autosize();
      this.#updateSend();
      if (this.#mode?.kind !== "edit" && this.input.value.trim()) client.typing(chatId);
    });
    this.#listen(this.scroller, "scroll", () => {
      if (this.scroller.scrollTop < NEAR_TOP_PX) this.#loadOlder();
      this.#markRead();
    });
    this.#listen(document, "visibilitychange", () => this.#markRead());
    // Files pasted into the composer or dropped on the conversation are attached too.
    this.#listen(this.input, "paste", (e) => this.#attach(e, e.clipboardData));
    this.#listen(this.el, "dragover", (e) => {
      if (e.dataTransfer?.types.includes("Files")) e.preventDefault();
    });
    this.#listen(this.el, "drop", (e) => this.#attach(e, e.dataTransfer));
    this.#listen(this.store, "change", (e) => this.#onChange(e.detail));

    this.renderHeader();
    this.renderMessages();
    // A big group's list comes without members: load them for names and read markers.
    const chat = this.store.chats.get(chatId);
    if (chat?.kind === "group" && !chat.members && !this.store.memberLists.has(chatId)) {
      client.loadMembers(chatId).catch((error) => replace(this.error, error.message));
    }
    client
      .openChat(chatId)
      .then(() => {
        this.renderMessages({ toBottom: true });
        this.#fill();
      })
      .catch((error) => replace(this.error, error.message));
  }

  #listen(target, event, handler) {
    target.addEventListener(event, handler);
    this.#listeners.push(() => target.removeEventListener(event, handler));
  }

  destroy() {
    for (const off of this.#listeners) off();
    this.membersPanel?.destroy();
    this.lazy.disconnect();
    // Its images are not shown any more: their object URLs go.
    this.client.files.keepOnly(this.chatId);
  }

  /** Attaches the files of a paste or a drop (`data`), if it holds some. */
  #attach(event, data) {
    const files = [...(data?.files ?? [])];
    if (!files.length) return;
    event.preventDefault();
    this.uploads.add(files);
  }

  /** Send is offered when there is text or an uploaded file, and no file is still uploading. */
  #updateSend() {
    const something = this.input.value.trim() !== "" || (this.#mode?.kind !== "edit" && this.uploads.ready.length > 0);
    this.sendButton.disabled = !something || (this.#mode?.kind !== "edit" && this.uploads.busy);
  }

  /** Shows or hides the group's panel (details, members, management). */
  toggleMembers(open = !this.membersPanel) {
    if (open && !this.membersPanel) {
      this.membersPanel = new MembersPanel(this.client, this.chatId, { onClose: () => this.toggleMembers(false) });
      this.el.append(this.membersPanel.el);
      this.membersPanel.focus();
    } else if (!open && this.membersPanel) {
      this.membersPanel.destroy();
      this.membersPanel.el.remove();
      this.membersPanel = null;
      this.membersButton.focus();
    }
    this.membersButton.setAttribute("aria-expanded", String(Boolean(this.membersPanel)));
  }

  focus() {
    this.input.focus();
  }

  #onChange({ kind, chatId }) {
    const thisChat = kind === "chats" && (chatId === null || chatId === this.chatId);
    if (kind === "presence" || thisChat) this.renderHeader();
    // The member previews come with the chat list: who counts for "Seen by".
    if (thisChat) this.renderMessages();
    if (chatId !== this.chatId) return;
    if (kind === "messages" || kind === "pending" || kind === "read" || kind === "members") this.renderMessages();
    if (kind === "typing") this.renderTyping();
  }

  renderHeader() {
    const chat = this.store.chats.get(this.chatId);
    replace(this.title, chat ? this.store.title(chat) : "Chat");
    const partner = this.store.partner(chat);
    if (partner) {
      const presence = this.store.presence.get(partner.user_id);
      replace(
        this.subtitle,
        presenceDot(this.store, partner.user_id),
        ` @${partner.username}`,
        presence ? (presence.online ? " · online" : presence.last_seen_at ? ` · last seen ${fullTime(presence.last_seen_at)}` : " · offline") : "",
      );
    } else if (chat) {
      const members = `${chat.member_count} member${chat.member_count === 1 ? "" : "s"}`;
      replace(this.subtitle, `${members} · ${chat.visibility}${chat.description ? ` · ${chat.description}` : ""}`);
    }
    this.leaveButton.hidden = !chat || chat.kind !== "group" || chat.role === "owner";
    this.muteButton.hidden = !chat?.role;
    replace(this.muteButton, chat?.muted ? "Unmute" : "Mute");
    this.muteButton.setAttribute("aria-pressed", String(Boolean(chat?.muted)));
    this.membersButton.hidden = !chat || chat.kind !== "group";
  }

  renderTyping() {
    replace(this.typingLine, typingText(this.store.typingIn(this.chatId)));
  }

  /** The read line under my newest message that others have read. */
  #seen(messages) {
    const none = { seq: null, label: null };
    const marks = this.store.readBy.get(this.chatId);
    if (!marks || marks.size === 0) return none;
    // Only current members count (one who left keeps a marker here); while the
    // members are unknown, everyone heard of does.
    const members = this.store.membersOf(this.chatId);
    const current = members ? new Map(members.map((m) => [m.user_id, m])) : null;
    const readers = [...marks.entries()].filter(([userId]) => !current || current.has(userId));
    if (readers.length === 0) return none;
    const me = this.store.me?.id;
    const highest = Math.max(...readers.map(([, seq]) => seq));
    const mine = messages.filter((m) => m.sender_id === me && m.seq <= highest && !m.deleted_at);
    const last = mine[mine.length - 1];
    if (!last) return none;
    const chat = this.store.chats.get(this.chatId);
    if (chat?.kind === "direct") return { seq: last.seq, label: "Seen" };
    const names = readers
      .filter(([, seq]) => seq >= last.seq)
      .map(([userId]) => current?.get(userId)?.username ?? "someone");
    return { seq: last.seq, label: `Seen by ${names.join(", ")}` };
  }

  renderMessages({ toBottom = false } = {}) {
    const timeline = this.store.timelines.get(this.chatId);
    const messages = timeline?.sorted() ?? [];
    const scroller = this.scroller;
    const wasAtBottom = toBottom || this.#atBottom();
    const firstSeqBefore = Number(this.list.querySelector(".message[data-seq]")?.dataset.seq ?? 0);
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;

    const me = this.store.me?.id;
    const seen = this.#seen(messages);
    const actions = {
      reply: (m) => this.#setMode({ kind: "reply", message: m }),
      edit: (m) => this.#setMode({ kind: "edit", message: m }),
      remove: (m) =>
        this.client.remove(this.chatId, m).catch((error) => replace(this.error, error.message)),
      react: (m, emoji, add) =>
        this.client.react(this.chatId, m, emoji, add).catch((error) => replace(this.error, error.message)),
      files: this.client.files,
      whenShown: this.lazy.whenShown,
      fileFailed: (a, error) => replace(this.error, `${a.filename} could not be downloaded: ${error.message}`),
    };
    const names = this.#usernames();
    const refocus = this.#focusedControl();
    const desired = [];
    let day = null;
    for (const message of messages) {
      const thisDay = dayKey(message.created_at);
      if (thisDay !== day) {
        day = thisDay;
        desired.push([`day:${thisDay}`, () => daySeparator(message.created_at)]);
      }
      const original = message.reply_to ? timeline.byId(message.reply_to) : null;
      const seenLabel = seen.seq === message.seq ? seen.label : null;
      const mentionNames = mentionedNames(message, names);
      desired.push([
        `m:${messageKey(message, original, seenLabel, mentionNames)}`,
        () => messageItem(message, { mine: message.sender_id === me, myId: me, original, seen: seenLabel, mentionNames, actions }),
      ]);
    }
    for (const item of this.store.pendingIn(this.chatId)) {
      desired.push([
        `p:${item.client_id}:${item.state}:${item.error ?? ""}`,
        () =>
          pendingItem(item, {
            retry: (p) => this.client.retry(this.chatId, p.client_id),
            discard: (p) => this.client.discard(this.chatId, p.client_id),
          }),
      ]);
    }
    this.#nodes = reconcile(this.list, desired, this.#nodes);
    refocus?.();
    // Images of messages gone or deleted are not shown any more: their URLs go.
    this.client.files.keepOnly(this.chatId, new Set(messages.flatMap((m) => m.attachments.map((a) => a.id))));

    const loaded = Boolean(timeline?.loaded);
    this.olderButton.hidden = !loaded || !timeline.hasOlder;
    this.olderButton.disabled = Boolean(timeline?.loadingOlder);
    this.historyStart.hidden = !loaded || timeline.hasOlder;

    const firstSeqAfter = messages[0]?.seq ?? 0;
    if (wasAtBottom) {
      scroller.scrollTop = scroller.scrollHeight;
    } else if (firstSeqBefore && firstSeqAfter < firstSeqBefore) {
      // Older messages went in above: keep what was on screen where it was.
      scroller.scrollTop = scroller.scrollHeight - fromBottom;
    }
    this.#markRead();
  }

  /** user id → username of the members known here (me included). */
  #usernames() {
    const names = new Map((this.store.membersOf(this.chatId) ?? []).map((m) => [m.user_id, m.username]));
    const me = this.store.me;
    if (me) names.set(me.id, me.username);
    return names;
  }

  /**
   * A reaction control of a message that had focus, found again after a redraw (its
   * message is drawn anew when its reactions change); a chip that went, or the
   * picker, hands focus to the message's react button. Null when none had it.
   */
  #focusedControl() {
    const active = document.activeElement;
    const item = active?.closest?.("#message-list .message[data-id]");
    if (!item || !active.matches(".reaction, .react-button, .reaction-picker button")) return null;
    const chip = active.matches(".reaction") ? active.dataset.emoji : null;
    return () => {
      if (document.activeElement !== document.body && document.activeElement !== active) return;
      if (item.isConnected && active.isConnected) return;
      const again = this.list.querySelector(`#message-${item.dataset.id}`);
      if (!again) return;
      const target =
        (chip && [...again.querySelectorAll(".reaction")].find((e) => e.dataset.emoji === chip)) ||
        again.querySelector(".react-button");
      target?.focus();
    };
  }

  #atBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  async #loadOlder() {
    const timeline = this.store.timelines.get(this.chatId);
    if (!timeline?.loaded || !timeline.hasOlder || timeline.loadingOlder) return;
    try {
      await this.client.loadOlder(this.chatId);
      this.#fill();
    } catch (error) {
      replace(this.error, error.message);
    }
  }

  /** Loads older pages until the list fills the screen (a short page shows no scrollbar). */
  #fill() {
    const s = this.scroller;
    if (s.scrollHeight <= s.clientHeight + NEAR_TOP_PX) this.#loadOlder();
  }

  /** Reading is seeing the end of the conversation in a visible page. */
  #markRead() {
    if (document.visibilityState !== "visible" || !this.#atBottom()) return;
    const chat = this.store.chats.get(this.chatId);
    const timeline = this.store.timelines.get(this.chatId);
    if (!chat || !timeline?.loaded) return;
    const newest = timeline.newest;
    if (newest > (chat.last_read_seq ?? 0)) this.client.markRead(this.chatId, newest);
  }

  #setMode(mode) {
    this.#mode = mode;
    if (!mode) {
      this.banner.hidden = true;
      replace(this.banner);
      replace(this.sendButton, "Send");
      this.#updateSend();
      return;
    }
    const { kind, message } = mode;
    const cancel = h("button", { type: "button", class: "link", "aria-label": kind === "edit" ? "Cancel editing" : "Cancel reply", on: { click: () => this.#cancel() } }, "Cancel");
    const what =
      kind === "edit"
        ? "Editing your message"
        : `Replying to ${message.sender ?? "someone"}: ${(message.content || "📎 files").slice(0, 80)}`;
    replace(this.banner, h("span", { class: "banner-text" }, what), " ", cancel);
    this.banner.hidden = false;
    if (kind === "edit") {
      this.input.value = message.content;
      replace(this.sendButton, "Save");
    } else {
      replace(this.sendButton, "Send");
    }
    this.#autosize();
    this.#updateSend();
    this.input.focus();
  }

  #cancel() {
    if (this.#mode?.kind === "edit") this.input.value = "";
    this.#setMode(null);
    this.input.focus();
  }

  #onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.composer.requestSubmit();
    } else if (event.key === "Escape" && this.#mode) {
      event.preventDefault();
      this.#cancel();
    }
  }

  #autosize() {
    const input = this.input;
    input.style.height = "auto";
    // Borders count in the height (border-box), not in scrollHeight.
    input.style.height = `${Math.min(input.scrollHeight + input.offsetHeight - input.clientHeight, 160)}px`;
  }

  async #submit() {
    const text = this.input.value.trim();
    const mode = this.#mode;
    const editing = mode?.kind === "edit";
    // A file still uploading waits (Send is disabled meanwhile).
    if (!editing && this.uploads.busy) return;
    if (!text && (editing || this.uploads.ready.length === 0)) return;
    replace(this.error);
    if (editing) {
      if (text === mode.message.content) return this.#cancel();
      try {
        this.sendButton.disabled = true;
        await this.client.edit(this.chatId, mode.message.id, text);
        this.input.value = "";
        this.#setMode(null);
      } catch (error) {
        replace(this.error, error.message);
      } finally {
        this.sendButton.disabled = false;
      }
    } else {
      this.client.send(this.chatId, text, mode?.kind === "reply" ? mode.message.id : null, this.uploads.take());
      this.input.value = "";
      this.#setMode(null);
      this.scroller.scrollTop = this.scroller.scrollHeight;
    }
    this.#autosize();
    this.#updateSend();
    this.input.focus();
  }

  async #toggleMute() {
    const chat = this.store.chats.get(this.chatId);
    this.muteButton.disabled = true;
    try {
      await this.client.setMuted(this.chatId, !chat?.muted);
    } catch (error) {
      replace(this.error, error.message);
    } finally {
      this.muteButton.disabled = false;
    }
  }

  async #leave() {
    const chat = this.store.chats.get(this.chatId);
    this.leaveButton.disabled = true;
    try {
      await this.client.leaveGroup(this.chatId);
      location.hash = "#/chats";
      this.client.dispatchEvent(new CustomEvent("toast", { detail: `You left ${this.store.title(chat)}.` }));
    } catch (error) {
      replace(this.error, error.message);
    } finally {
      this.leaveButton.disabled = false;
    }
  }
}
