// The logged-in page: top bar (connection state, me, log out), the side panel (chats,
// friends, groups) and the open conversation. Routes live in the URL's hash, so a
// reload reopens the same chat: #/chats, #/chats/12, #/friends, #/groups, #/admin
// (site admins).

import { h, replace, announce } from "../dom.js";
import { AdminView } from "./admin.js";
import { ChatList } from "./chatlist.js";
import { Conversation } from "./conversation.js";
import { FriendsPanel } from "./friends.js";
import { GroupsPanel } from "./groups.js";

const TOAST_MS = 6000;

function parseRoute(hash) {
  const chat = /^#\/chats\/(\d+)$/.exec(hash);
  if (chat) return { tab: "chats", chatId: Number(chat[1]) };
  if (hash === "#/friends") return { tab: "friends", chatId: null };
  if (hash === "#/groups") return { tab: "groups", chatId: null };
  if (hash === "#/admin") return { tab: "admin", chatId: null };
  return { tab: "chats", chatId: null };
}

export class Shell {
  #offs = [];
  #panel = null;
  #panelTab = null;
  #conversation = null;
  #countdown = null;
  /** What the main area shows: "admin", a chat id, or null (the placeholder). */
  #main = undefined;
  #admin = null;

  constructor(session, client) {
    this.session = session;
    this.client = client;
    this.chatList = new ChatList(client);

    this.meName = h("span", { class: "me", id: "me" }, session.user.display_name || session.user.username);
    this.connection = h("p", { class: "connection", id: "connection", role: "status", dataset: { state: "connecting" } });
    this.logoutButton = h("button", { type: "button", class: "secondary", id: "logout" }, "Log out");
    this.tabs = Object.fromEntries(
      [
        ["chats", "Chats", "#/chats"],
        ["friends", "Friends", "#/friends"],
        ["groups", "Groups", "#/groups"],
        ["admin", "Admin", "#/admin"],
      ].map(([tab, label, href]) => [tab, h("a", { href, id: `tab-${tab}`, class: "tab" }, label)]),
    );
    this.#adminTab();
    this.side = h("div", { class: "side-panel" });
    this.main = h("main", { class: "main", id: "main" });
    this.toasts = h("div", { class: "toasts", id: "toasts", role: "status" });
    this.el = h(
      "div",
      { class: "shell", id: "shell", dataset: { view: "list" } },
      h(
        "header",
        { class: "topbar" },
        h("h1", {}, "Chat"),
        this.connection,
        this.meName,
        this.logoutButton,
      ),
      h(
        "div",
        { class: "layout" },
        h("nav", { class: "sidebar", "aria-label": "Chats, friends and groups" },
          h("div", { class: "tabs" }, Object.values(this.tabs)),
          this.side,
        ),
        this.main,
      ),
      this.toasts,
    );

    this.#on(this.logoutButton, "click", () => session.logout());
    this.#on(window, "hashchange", () => this.route());
    this.#on(client.connection, "state", () => this.renderConnection());
    this.#on(client, "error", (e) => this.toast(e.detail.message ?? String(e.detail)));
    this.#on(client, "toast", (e) => this.toast(e.detail));
    this.#on(client, "notification", (e) => this.#notify(e.detail));
    this.#on(client, "left", (e) => {
      if (this.#conversation?.chatId !== e.detail.chatId) return;
      // Leaving on purpose (here or on another device) needs no notice.
      if (e.detail.reason === "deleted") this.toast("This chat was deleted.");
      else if (e.detail.reason === "removed") this.toast("You were removed from this chat.");
      location.hash = "#/chats";
    });
    this.#on(client.store, "change", (e) => {
      if (e.detail.kind === "chats") this.#title();
    });
    // My admin rights changed (learnt when the socket reconnects).
    this.#on(client, "me", () => {
      this.#adminTab();
      replace(this.meName, client.store.me.display_name || client.store.me.username);
      if (this.#main === "admin") {
        this.#main = null;
        this.route();
      }
    });
    this.renderConnection();
    this.route();
  }

  #on(target, event, handler) {
    target.addEventListener(event, handler);
    this.#offs.push(() => target.removeEventListener(event, handler));
  }

  destroy() {
    for (const off of this.#offs) off();
    clearInterval(this.#countdown);
    this.chatList.destroy();
    this.#panel?.destroy?.();
    this.#conversation?.destroy();
    this.#admin?.destroy();
    document.title = "Chat";
  }

  route() {
    const { tab, chatId } = parseRoute(location.hash);
    for (const [name, link] of Object.entries(this.tabs)) {
      link.setAttribute("aria-current", name === tab ? "page" : "false");
    }
    if (tab !== this.#panelTab) {
      if (this.#panel !== this.chatList) this.#panel?.destroy?.();
      // The admin view takes the main area; the side keeps the chat list.
      this.#panel = tab === "friends" ? new FriendsPanel(this.client) : tab === "groups" ? new GroupsPanel(this.client) : this.chatList;
      this.#panelTab = tab;
      replace(this.side, this.#panel.el);
    }
    this.chatList.select(chatId);
    const main = tab === "admin" ? "admin" : chatId;
    if (main !== this.#main) {
      this.#main = main;
      this.#conversation?.destroy();
      this.#admin?.destroy();
      this.#conversation = chatId ? new Conversation(this.client, chatId) : null;
      this.#admin = main === "admin" ? new AdminView(this.client) : null;
      replace(
        this.main,
        this.#conversation?.el ??
          this.#admin?.el ??
          h("div", { class: "placeholder" }, h("p", {}, "Pick a chat, or find friends and groups to talk to.")),
      );
      this.#conversation?.focus();
      this.#admin?.focus();
    }
    // Small screens show one of the two: the list, or the open conversation (or admin).
    this.el.dataset.view = main ? "conversation" : "list";
  }

  /** The Admin tab is for site admins only (the API refuses everyone else anyway). */
  #adminTab() {
    this.tabs.admin.hidden = !this.client.store.me?.is_admin;
  }

  renderConnection() {
    const connection = this.client.connection;
    const state = connection.state;
    this.connection.dataset.state = state;
    clearInterval(this.#countdown);
    const draw = () => {
      if (state === "open") return replace(this.connection, "Connected");
      if (state === "connecting") return replace(this.connection, "Connecting…");
      if (state === "reconnecting") {
        const seconds = Math.max(0, Math.ceil((connection.retryAt - Date.now()) / 1000));
        return replace(
          this.connection,
          seconds > 0 ? `Connection lost. Retrying in ${seconds} s ` : "Reconnecting… ",
          seconds > 1 ? h("button", { type: "button", class: "link", on: { click: () => connection.retryNow() } }, "Retry now") : null,
        );
      }
      return replace(this.connection, "Offline");
    };
    draw();
    if (state === "reconnecting") this.#countdown = setInterval(draw, 1000);
    if (state === "open" || state === "reconnecting") announce(state === "open" ? "Connected" : "Connection lost, reconnecting");
  }

  #notify(note) {
    if (note.kind === "friend_request") this.toast(`${note.from_username} wants to be your friend (see Friends).`);
    else if (note.kind === "friend_accepted") this.toast(`${note.username} accepted your friend request.`);
    else if (note.kind === "added_to_chat") this.toast("You were added to a chat.");
    else if (note.kind === "mention") this.#mentioned(note);
  }

  /**
   * Someone mentioned me: said unless I am looking at that chat, or muted it (the
   * server sends none for a muted chat; this tab may know of the mute first).
   */
  #mentioned(note) {
    const chat = this.client.store.chats.get(note.chat_id);
    if (chat?.muted) return;
    if (this.#conversation?.chatId === note.chat_id && document.visibilityState === "visible") return;
    const where = chat ? ` in ${this.client.store.title(chat)}` : "";
    this.toast(`${note.from_username} mentioned you${where}: ${note.excerpt}`);
  }

  toast(text) {
    const item = h("p", { class: "toast" }, text);
    this.toasts.append(item);
    setTimeout(() => item.remove(), TOAST_MS);
  }

  /** "(3) Chat": unread messages of the chats I did not mute, in the tab's title. */
  #title() {
    let unread = 0;
    for (const chat of this.client.store.chats.values()) unread += chat.muted ? 0 : (chat.unread_count ?? 0);
    document.title = unread ? `(${unread}) Chat` : "Chat";
  }
}
