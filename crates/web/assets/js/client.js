// The chat client's logic, apart from any view: loads chats and history, applies live
// events, recovers what a dropped connection missed, and sends messages reliably.

import { ApiError, Api, query } from "./api.js";
import { Files } from "./files.js";
import { Connection } from "./socket.js";
import { normalizeMessage, Store } from "./store.js";

const PAGE = 50;
const RECOVERY_PAGE = 200;
// Events that change the chat list's membership or names: reload it (coalesced).
const RELOAD_CHATS_AFTER_MS = 250;
const SEND_RETRY_FIRST_MS = 1000;
const SEND_RETRY_MAX_MS = 15_000;
const TYPING_EVERY_MS = 1000;

/** A client id for an outgoing message: random, so a resend is recognised as one. */
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `web-${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export class ChatClient extends EventTarget {
  #reloadTimer = null;
  /** chat id → {again, promise}: the catch-up running for it. */
  #recovering = new Map();
  /** client ids being posted right now. */
  #sending = new Set();
  #lastTyping = new Map();
  #reading = new Map();
  /** chat id → timer of a coming member list reload. */
  #memberTimers = new Map();

  constructor(session) {
    super();
    this.session = session;
    this.api = new Api(session);
    this.store = new Store();
    /** Attachments' bytes, as object URLs. */
    this.files = new Files(this.api);
    this.connection = new Connection(async () => (await this.api.post("/ws/ticket")).ticket);
    this.connection.addEventListener("open", () => this.recover());
    this.connection.addEventListener("message", (e) => this.#onEvent(e.detail));
    this.connection.addEventListener("revoked", () =>
      session.end("Your session was ended (logged out elsewhere, password changed or account deactivated)."),
    );
  }

  start() {
    this.store.me = this.session.user;
    this.loadChats().catch((error) => this.#report(error));
    this.connection.start();
  }

  stop() {
    this.connection.stop();
    clearTimeout(this.#reloadTimer);
    for (const timer of this.#memberTimers.values()) clearTimeout(timer);
    for (const items of this.store.pending.values()) for (const item of items) clearTimeout(item.retry);
    this.store.reset();
    this.files.clear();
  }

  /** An error worth telling the person about (views listen for `error`). */
  #report(error) {
    this.dispatchEvent(new CustomEvent("error", { detail: error }));
  }

  /** Every chat of mine (200 a page; a user has at most 1 000 by default). */
  async loadChats() {
    const started = performance.now();
    const chats = [];
    let cursor = null;
    do {
      const page = await this.api.get(`/chats${query({ limit: 200, cursor })}`);
      chats.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    this.store.setChats(chats, started);
  }

  #reloadChatsSoon() {
    clearTimeout(this.#reloadTimer);
    this.#reloadTimer = setTimeout(
      () => this.loadChats().catch((error) => this.#report(error)),
      RELOAD_CHATS_AFTER_MS,
    );
  }

  /** A chat's full member list, where one is kept, read again shortly (coalesced). */
  #reloadMembersSoon(chatId) {
    if (!this.store.memberLists.has(chatId)) return;
    clearTimeout(this.#memberTimers.get(chatId));
    this.#memberTimers.set(
      chatId,
      setTimeout(() => {
        this.#memberTimers.delete(chatId);
        if (this.store.chats.has(chatId)) this.loadMembers(chatId).catch((error) => this.#report(error));
      }, RELOAD_CHATS_AFTER_MS),
    );
  }

  /** Opens a chat: its first page of history, unless already loaded. */
  openChat(chatId) {
    const timeline = this.store.timeline(chatId);
    if (!timeline.opening) {
      timeline.opening = this.#loadFirstPage(chatId, timeline);
      timeline.opening.catch(() => {
        timeline.opening = null;
      });
    }
    return timeline.opening;
  }

  async #loadFirstPage(chatId, timeline) {
    const page = await this.api.get(`/chats/${chatId}/messages${query({ limit: PAGE })}`);
    timeline.loaded = true;
    timeline.hasOlder = page.next_cursor !== null;
    timeline.merge(page.items.map(normalizeMessage));
    this.store.changed("messages", chatId);
    // Events that arrived while the page loaded are in the timeline already; anything
    // between the page and them is fetched now.
    await this.catchUp(chatId);
  }

  /** The page before the oldest loaded message (infinite scroll upwards). */
  async loadOlder(chatId) {
    const timeline = this.store.timeline(chatId);
    if (!timeline.loaded || !timeline.hasOlder || timeline.loadingOlder) return;
    timeline.loadingOlder = true;
    try {
      const before = timeline.oldest;
      const page = await this.api.get(
        `/chats/${chatId}/messages${query({ before_seq: before, limit: PAGE })}`,
      );
      timeline.hasOlder = page.next_cursor !== null && page.items.length > 0;
      timeline.merge(page.items.map(normalizeMessage));
    } finally {
      timeline.loadingOlder = false;
      this.store.changed("messages", chatId);
    }
  }

  /**
   * Fetches everything after the newest loaded message of a chat (`after_seq`, oldest
   * first, page after page): what a dropped connection or a gap missed. One at a time
   * per chat; a call while one runs makes it go round once more.
   */
  catchUp(chatId) {
    const running = this.#recovering.get(chatId);
    if (running) {
      running.again = true;
      return running.promise;
    }
    const state = { again: false, promise: null };
    state.promise = (async () => {
      try {
        do {
          state.again = false;
          const timeline = this.store.timeline(chatId);
          for (;;) {
            const after = timeline.newest;
            const page = await this.api.get(
              `/chats/${chatId}/messages${query({ after_seq: after, limit: RECOVERY_PAGE })}`,
            );
            this.store.addMessages(chatId, page.items.map(normalizeMessage));
            if (page.next_cursor === null || page.items.length === 0) break;
            if (timeline.newest === after) break; // no progress: never spin
          }
        } while (state.again);
      } finally {
        this.#recovering.delete(chatId);
      }
    })();
    this.#recovering.set(chatId, state);
    return state.promise;
  }

  /**
   * After every (re)connection: the chat list again (new chats, unread counts, last
   * messages) and the missed messages of every chat whose history is loaded. The
   * socket is already open, so nothing sent from now on is missed either.
   */
  async recover() {
    try {
      await Promise.all([this.loadChats(), this.#refreshMe()]);
      const loaded = [...this.store.timelines.entries()].filter(([, t]) => t.loaded);
      const lists = [...this.store.memberLists.keys()].filter((chatId) => this.store.chats.has(chatId));
      await Promise.all([
        ...loaded.map(([chatId]) => this.catchUp(chatId)),
        ...lists.map((chatId) => this.loadMembers(chatId)),
      ]);
      this.#flushAll();
    } catch (error) {
      this.#report(error);
    }
  }

  /**
   * My account again: a change of my admin rights closes my sockets, so the
   * reconnection is when to learn it (the Admin tab follows `me`).
   */
  async #refreshMe() {
    const me = await this.api.get("/users/me");
    // Logged out meanwhile: this client is done.
    if (!this.session.loggedIn || this.session.user?.id !== me.id) return;
    const before = this.store.me;
    this.store.me = me;
    this.session.user = me;
    if (before?.is_admin !== me.is_admin || before?.display_name !== me.display_name) {
      this.dispatchEvent(new CustomEvent("me", { detail: me }));
    }
  }

  #onEvent(event) {
    const store = this.store;
    const chatId = event.chat_id;
    switch (event.type) {
      case "chat.message": {
        const message = normalizeMessage(event);
        const timeline = store.timelines.get(chatId);
        // A seq beyond the next one means events were missed: fetch the gap.
        const gap = timeline?.loaded && message.seq > timeline.newest + 1;
        // A mention of me beyond what the list counted. Counted before the message
        // goes in: an open chat read to its end clears it again at once.
        const chat = store.chats.get(chatId);
        if (chat && message.seq > chat.last_seq && message.seq > (chat.last_read_seq ?? 0) &&
          message.sender_id !== store.me?.id && store.mentionsMe(message)) {
          store.mentioned(chatId);
        }
        if (!store.addMessages(chatId, [message])) this.#reloadChatsSoon();
        if (gap) this.catchUp(chatId).catch((error) => this.#report(error));
        break;
      }
      case "chat.message_edited":
        store.patchMessage(chatId, event.seq, { content: event.message, edited_at: event.edited_at });
        break;
      case "chat.message_deleted":
        store.messageDeleted(chatId, event.seq, event.deleted_at);
        break;
      case "chat.reaction":
        store.reacted(chatId, event);
        break;
      case "chat.typing":
        if (event.user_id !== store.me?.id) store.setTyping(chatId, event.user_id, event.username);
        break;
      case "chat.read":
        if (event.user_id === store.me?.id) store.markedRead(chatId, event.seq);
        else store.readByOther(chatId, event.user_id, event.seq);
        break;
      case "chat.member_left":
        if (event.user_id === store.me?.id) {
          store.removeChat(chatId);
          this.dispatchEvent(new CustomEvent("left", { detail: { chatId, reason: event.reason } }));
        } else {
          this.#reloadChatsSoon();
          this.#reloadMembersSoon(chatId);
        }
        break;
      case "chat.deleted":
        store.removeChat(chatId);
        this.dispatchEvent(new CustomEvent("left", { detail: { chatId, reason: "deleted" } }));
        break;
      case "chat.member_joined":
      case "chat.member_role_changed":
        this.#reloadChatsSoon();
        this.#reloadMembersSoon(chatId);
        break;
      case "chat.updated":
        this.#reloadChatsSoon();
        break;
      case "presence":
        store.setPresence(event.user_id, event.online, event.last_seen_at);
        break;
      case "notification":
        if (event.kind === "added_to_chat" || event.kind === "removed_from_chat") this.#reloadChatsSoon();
        this.dispatchEvent(new CustomEvent("notification", { detail: event }));
        break;
      case "resync":
        if (chatId) {
          this.catchUp(chatId).catch((error) => this.#report(error));
        } else {
          // Every socket of the instance got this at once: spread the fetches out.
          setTimeout(() => this.recover(), Math.random() * 2000);
        }
        break;
      default:
        break;
    }
  }

  // ---- sending --------------------------------------------------------------------

  /**
   * Sends a message, with the files `attachments` (uploaded already: their views). It
   * shows at once as pending and is posted with a client id; after a network failure
   * or a server restart it is posted again with the same id, which the server answers
   * with the original message: never stored twice.
   */
  send(chatId, content, replyTo = null, attachments = []) {
    const item = { client_id: newClientId(), content, reply_to: replyTo, attachments, state: "sending", error: null };
    this.store.setPending(chatId, [...this.store.pendingIn(chatId), item]);
    this.#post(chatId, item, SEND_RETRY_FIRST_MS);
  }

  async #post(chatId, item, backoff) {
    if (this.#sending.has(item.client_id)) return;
    this.#sending.add(item.client_id);
    try {
      const message = await this.api.post(`/chats/${chatId}/messages`, {
        content: item.content,
        client_id: item.client_id,
        reply_to: item.reply_to ?? undefined,
        attachments: item.attachments.length ? item.attachments.map((a) => a.id) : undefined,
      });
      this.store.addMessages(chatId, [normalizeMessage(message)]);
      this.markRead(chatId, message.seq);
    } catch (error) {
      if (error instanceof ApiError && error.transient && this.session.loggedIn) {
        // Retried on a timer, and at once when the socket comes back.
        const wait = Math.max(backoff, (error.retryAfter ?? 0) * 1000);
        item.retry = setTimeout(() => this.#post(chatId, item, Math.min(backoff * 2, SEND_RETRY_MAX_MS)), wait);
        this.#updatePending(chatId, item, { state: "sending", error: error.message });
      } else {
        this.#updatePending(chatId, item, { state: "failed", error: error.message });
      }
    } finally {
      this.#sending.delete(item.client_id);
    }
  }

  #updatePending(chatId, item, fields) {
    Object.assign(item, fields);
    const items = this.store.pendingIn(chatId);
    if (items.includes(item)) this.store.setPending(chatId, [...items]);
  }

  /** Posts every waiting message now (the connection is back). */
  #flushAll() {
    for (const [chatId, items] of this.store.pending) {
      for (const item of items) {
        if (item.state !== "sending") continue;
        clearTimeout(item.retry);
        this.#post(chatId, item, SEND_RETRY_FIRST_MS);
      }
    }
  }

  /** Tries a failed message again, with its original client id. */
  retry(chatId, clientId) {
    const item = this.store.pendingIn(chatId).find((p) => p.client_id === clientId);
    if (!item) return;
    this.#updatePending(chatId, item, { state: "sending", error: null });
    this.#post(chatId, item, SEND_RETRY_FIRST_MS);
  }

  discard(chatId, clientId) {
    const items = this.store.pendingIn(chatId);
    for (const item of items) if (item.client_id === clientId) clearTimeout(item.retry);
    this.store.setPending(chatId, items.filter((p) => p.client_id !== clientId));
  }

  /**
   * Uploads a file to a chat (multipart/form-data, field `file`): its view, whose id a
   * send then carries. Until sent, only I can download it.
   */
  upload(chatId, file) {
    const form = new FormData();
    form.append("file", file, file.name);
    return this.api.upload(`/chats/${chatId}/attachments`, form);
  }

  async edit(chatId, messageId, content) {
    const message = await this.api.patch(`/chats/${chatId}/messages/${messageId}`, { content });
    this.store.patchMessage(chatId, message.seq, normalizeMessage(message));
  }

  async remove(chatId, message) {
    await this.api.delete(`/chats/${chatId}/messages/${message.id}`);
    this.store.messageDeleted(chatId, message.seq, new Date().toISOString());
  }

  /**
   * Adds my reaction `emoji` to a message, or takes it back (`add` false). Repeating
   * either changes nothing; others learn it from the `chat.reaction` event.
   */
  async react(chatId, message, emoji, add) {
    const path = `/chats/${chatId}/messages/${message.id}/reactions/${encodeURIComponent(emoji)}`;
    const version = this.store.reactionVersion(message.id);
    const answer = add ? await this.api.put(path) : await this.api.delete(path);
    this.store.setReactions(chatId, message.seq, message.id, answer.reactions, version, emoji);
  }

  /**
   * Moves my read marker to `seq` if it is further. Over the socket when it is open
   * (no request), else over REST; one request per chat at a time, the latest wins.
   */
  markRead(chatId, seq) {
    const chat = this.store.chats.get(chatId);
    if (!chat || seq <= (chat.last_read_seq ?? 0)) return;
    this.store.markedRead(chatId, seq);
    if (this.connection.send({ action: "mark_read", chat_id: chatId, seq })) return;
    const state = this.#reading.get(chatId);
    if (state) {
      state.seq = Math.max(state.seq, seq);
      return;
    }
    const mine = { seq };
    this.#reading.set(chatId, mine);
    (async () => {
      let sent = 0;
      while (mine.seq > sent) {
        sent = mine.seq;
        await this.api.post(`/chats/${chatId}/read`, { seq: sent });
      }
    })()
      .catch(() => {})
      .finally(() => this.#reading.delete(chatId));
  }

  /** Tells the chat I am typing (at most once a second; dropped when offline). */
  typing(chatId) {
    const now = Date.now();
    if (now - (this.#lastTyping.get(chatId) ?? 0) < TYPING_EVERY_MS) return;
    this.#lastTyping.set(chatId, now);
    this.connection.send({ action: "typing", chat_id: chatId });
  }

  /**
   * Every member of a chat (200 a page), with their role, presence and read marker;
   * kept in the store (names for "Seen by", the members panel).
   */
  async loadMembers(chatId) {
    const requestedAt = performance.now();
    const members = [];
    let cursor = null;
    do {
      const page = await this.api.get(`/chats/${chatId}/members${query({ limit: 200, cursor })}`);
      members.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    this.store.setMembers(chatId, members, requestedAt);
    return members;
  }

  // ---- friends and groups -----------------------------------------------------------

  searchUsers(q) {
    return this.api.get(`/users${query({ q, limit: 20 })}`);
  }

  /** My friends; their presence goes to the store (the dots of every view). */
  async friends() {
    const requestedAt = performance.now();
    const page = await this.api.get("/friends");
    this.store.seedPresence(
      page.items.map((f) => ({ user_id: f.user.id, online: f.online, last_seen_at: f.last_seen_at })),
      requestedAt,
    );
    return page;
  }

  friendRequests() {
    return this.api.get("/friends/requests");
  }

  /** The users I block. */
  blocks() {
    return this.api.get("/users/me/blocks");
  }

  /** Blocks a user: no friend requests, new direct chats or direct messages either way. */
  blockUser(userId) {
    return this.api.put(`/users/${userId}/block`);
  }

  unblockUser(userId) {
    return this.api.delete(`/users/${userId}/block`);
  }

  /** Messages of every chat I am in holding the words of `q`, most relevant first. */
  searchMessages(q) {
    return this.api.get(`/search/messages${query({ q, limit: 20 })}`);
  }

  askFriend(userId) {
    return this.api.post("/friends/requests", { user_id: userId });
  }

  acceptRequest(id) {
    return this.api.post(`/friends/requests/${id}/accept`);
  }

  declineRequest(id) {
    return this.api.post(`/friends/requests/${id}/decline`);
  }

  removeFriend(userId) {
    return this.api.delete(`/friends/${userId}`);
  }

  /** The direct chat with a user (created if needed); its id. */
  async directChat(userId) {
    const requestedAt = performance.now();
    const chat = await this.api.post("/chats/direct", { user_id: userId });
    this.store.upsertChat(chat, requestedAt);
    return chat.id;
  }

  async createGroup(fields) {
    const requestedAt = performance.now();
    const chat = await this.api.post("/chats", fields);
    this.store.upsertChat(chat, requestedAt);
    return chat.id;
  }

  discoverGroups(q) {
    return this.api.get(`/groups${query({ q, limit: 50 })}`);
  }

  async joinGroup(chatId) {
    await this.api.post(`/chats/${chatId}/join`);
    await this.loadChats();
  }

  /** Mutes or unmutes a chat for me: its unread messages stop counting in the title. */
  async setMuted(chatId, muted) {
    const path = `/chats/${chatId}/mute`;
    const state = muted ? await this.api.put(path) : await this.api.delete(path);
    const chat = this.store.chats.get(chatId);
    if (chat) {
      chat.muted = state.muted;
      this.store.changed("chats", chatId);
    }
  }

  async leaveGroup(chatId) {
    await this.api.post(`/chats/${chatId}/leave`);
    this.store.removeChat(chatId);
  }

  // ---- managing a group (owner, admins, site admins) ---------------------------------

  /** Adds a user to a group (`PUT`, so adding twice changes nothing). */
  async addMember(chatId, userId) {
    const member = await this.api.put(`/chats/${chatId}/members/${userId}`);
    await this.loadMembers(chatId);
    return member;
  }

  async removeMember(chatId, userId) {
    await this.api.delete(`/chats/${chatId}/members/${userId}`);
    await this.loadMembers(chatId);
  }

  /** Sets a member's role; `owner` hands the group over (I become an admin). */
  async changeRole(chatId, userId, role) {
    await this.api.patch(`/chats/${chatId}/members/${userId}`, { role });
    await Promise.all([this.loadMembers(chatId), this.loadChats()]);
  }

  /** Changes a group's name, description or visibility; the updated chat. */
  async updateGroup(chatId, fields) {
    const chat = await this.api.patch(`/chats/${chatId}`, fields);
    const known = this.store.chats.get(chatId);
    // My own view of it (role, unread count) stays; the group's fields change.
    if (known) this.store.upsertChat({ ...known, name: chat.name, description: chat.description, visibility: chat.visibility });
    return chat;
  }

  async deleteGroup(chatId) {
    await this.api.delete(`/chats/${chatId}`);
    this.store.removeChat(chatId);
  }

  // ---- site administration (is_admin; the API refuses everyone else) -----------------

  adminUsers(q, cursor) {
    return this.api.get(`/admin/users${query({ q, cursor, limit: 50 })}`);
  }

  adminUpdateUser(userId, fields) {
    return this.api.patch(`/admin/users/${userId}`, fields);
  }

  adminChats(q, cursor) {
    return this.api.get(`/admin/chats${query({ q, cursor, limit: 50 })}`);
  }

  /** A group's members, for a site admin who need not be one (200 a page). */
  async adminMembers(chatId) {
    const members = [];
    let cursor = null;
    do {
      const page = await this.api.get(`/chats/${chatId}/members${query({ limit: 200, cursor })}`);
      members.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return members;
  }

  async adminDeleteChat(chatId) {
    await this.api.delete(`/chats/${chatId}`);
    if (this.store.chats.has(chatId)) this.store.removeChat(chatId);
  }
}
