// What the page knows: chats, the loaded part of each chat's history, presence, typing
// and read markers of others, and messages still being sent. Views listen for
// `change` events ({kind, chatId}) and redraw what they show.

import { millis } from "./format.js";

/** One message shape for both sources: REST says `content`, WebSocket events `message`. */
export function normalizeMessage(m) {
  return {
    id: m.id,
    chat_id: m.chat_id,
    seq: m.seq,
    sender_id: m.sender_id ?? null,
    sender: m.sender ?? null,
    content: m.content ?? m.message ?? "",
    client_id: m.client_id ?? null,
    reply_to: m.reply_to ?? null,
    created_at: m.created_at,
    edited_at: m.edited_at ?? null,
    deleted_at: m.deleted_at ?? null,
    /** [{emoji, count, me}]: each emoji once, in the order it was first used. */
    reactions: m.reactions ?? [],
    /** Ids of the members the text mentions (events leave it out when empty). */
    mentions: m.mentions ?? [],
    /** Files it carries: [{id, filename, content_type, size, width, height, url}] (events leave it out when empty). */
    attachments: m.attachments ?? [],
  };
}

/**
 * A message's reactions after a `chat.reaction` event: `emoji` now has `count` (gone at
 * 0, appended when new); `me` (when given: the event was mine) says whether I hold it.
 */
export function withReaction(reactions, emoji, count, me) {
  const known = reactions.some((r) => r.emoji === emoji);
  const next = reactions.map((r) => (r.emoji === emoji ? { ...r, count, me: me ?? r.me } : r));
  if (!known) next.push({ emoji, count, me: me ?? false });
  return next.filter((r) => r.count > 0);
}

// Which of two copies of one message is the later state: deletion wins, then the
// latest edit (a history page fetched before an edit may arrive after its event).
function revision(m) {
  return m.deleted_at ? Infinity : millis(m.edited_at);
}

/**
 * The loaded part of one chat's history: a contiguous run of seqs, extended downwards
 * by older pages and upwards by live events and `after_seq` recovery. Keyed by seq,
 * so a message that arrives twice (live and recovered) is kept once.
 */
export class Timeline {
  messages = new Map();
  /** Whether older messages may exist below the oldest loaded one. */
  hasOlder = true;
  /** Whether the first page has been loaded. */
  loaded = false;

  get oldest() {
    let low = Infinity;
    for (const seq of this.messages.keys()) low = Math.min(low, seq);
    return low === Infinity ? null : low;
  }

  /**
   * The highest seq up to which nothing is missing (from the oldest loaded one): what
   * `after_seq` asks from. A live message beyond a hole does not count, so the hole is
   * fetched too. 0 when nothing is loaded.
   */
  get newest() {
    const oldest = this.oldest;
    if (oldest === null) return 0;
    let seq = oldest;
    while (this.messages.has(seq + 1)) seq += 1;
    return seq;
  }

  /** Adds or updates messages; true when anything changed. */
  merge(list) {
    let changed = false;
    for (const message of list) {
      const current = this.messages.get(message.seq);
      if (!current || (current.id === message.id && revision(message) > revision(current))) {
        this.messages.set(message.seq, message);
        changed = true;
      }
    }
    return changed;
  }

  /** Changes fields of a loaded message (edits, deletions); true when it was loaded. */
  patch(seq, fields) {
    const current = this.messages.get(seq);
    if (!current) return false;
    this.messages.set(seq, { ...current, ...fields });
    return true;
  }

  byId(id) {
    for (const message of this.messages.values()) if (message.id === id) return message;
    return null;
  }

  sorted() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }
}

const TYPING_SHOWN_MS = 4000;

export class Store extends EventTarget {
  /** The logged-in user. */
  me = null;
  /** Chat views from `GET /chats`, by id, kept current by events. */
  chats = new Map();
  /** Whether the chat list has been loaded once. */
  chatsLoaded = false;
  timelines = new Map();
  /**
   * user id → {online, last_seen_at, at}: from the lists the API gives (friends, chat
   * members) and `presence` events; `at` (performance.now()) says how recent it is.
   */
  presence = new Map();
  /** chat id → Map(user id → {username, until}). */
  typing = new Map();
  /** chat id → Map(user id → highest seq they have read): from `chat.read` events. */
  readBy = new Map();
  /** chat id → messages being sent: [{client_id, content, reply_to, attachments, state, error}]. */
  pending = new Map();
  /** chat id → every member (`GET /chats/{id}/members`), for the chats that needed it. */
  memberLists = new Map();
  /** chat id → when upsertChat added it (performance.now()). */
  #added = new Map();
  /** message id → `chat.reaction` events applied to it here (see setReactions). */
  #reactionEvents = new Map();

  changed(kind, chatId = null) {
    this.dispatchEvent(new CustomEvent("change", { detail: { kind, chatId } }));
  }

  reset() {
    this.me = null;
    this.chats.clear();
    this.chatsLoaded = false;
    this.timelines.clear();
    this.presence.clear();
    this.typing.clear();
    this.readBy.clear();
    this.pending.clear();
    this.memberLists.clear();
    this.#added.clear();
    this.#reactionEvents.clear();
    this.changed("reset");
  }

  /**
   * The chat list as the server gave it. `requestedAt` (performance.now() when the list
   * was asked for): a chat added here since (one just created) is kept even if the
   * list, read before it existed, lacks it.
   */
  setChats(list, requestedAt = Infinity) {
    const chats = new Map(list.map((chat) => [chat.id, chat]));
    for (const [id, at] of this.#added) {
      if (at > requestedAt && !chats.has(id) && this.chats.has(id)) chats.set(id, this.chats.get(id));
      else this.#added.delete(id);
    }
    this.chats = chats;
    this.chatsLoaded = true;
    for (const id of this.timelines.keys()) if (!this.chats.has(id)) this.timelines.delete(id);
    this.seedPresence(list.flatMap((chat) => chat.members ?? []), requestedAt);
    for (const chat of list) if (chat.members) this.seedReads(chat.id, chat.members);
    this.changed("chats");
  }

  /** A chat created or joined here (before the next list says so). */
  upsertChat(chat, requestedAt = -Infinity) {
    this.chats.set(chat.id, chat);
    this.#added.set(chat.id, performance.now());
    this.seedPresence(chat.members ?? [], requestedAt);
    if (chat.members) this.seedReads(chat.id, chat.members);
    this.changed("chats", chat.id);
  }

  removeChat(id) {
    this.chats.delete(id);
    this.#added.delete(id);
    this.timelines.delete(id);
    this.pending.delete(id);
    this.memberLists.delete(id);
    this.changed("chats", id);
  }

  /** Latest activity first. */
  sortedChats() {
    return [...this.chats.values()].sort(
      (a, b) => millis(b.last_activity_at) - millis(a.last_activity_at) || b.id - a.id,
    );
  }

  timeline(chatId) {
    let timeline = this.timelines.get(chatId);
    if (!timeline) {
      timeline = new Timeline();
      this.timelines.set(chatId, timeline);
    }
    return timeline;
  }

  /** The other member of a direct chat (from the inline member list). */
  partner(chat) {
    if (chat?.kind !== "direct") return null;
    return chat.members?.find((m) => m.user_id !== this.me?.id) ?? null;
  }

  /** A chat's members as known here: the full list if loaded, else the inline preview. */
  membersOf(chatId) {
    return this.memberLists.get(chatId) ?? this.chats.get(chatId)?.members ?? null;
  }

  /** The full member list of a chat, as the API gave it (asked for at `requestedAt`). */
  setMembers(chatId, members, requestedAt) {
    this.memberLists.set(chatId, members);
    this.seedPresence(members, requestedAt);
    this.seedReads(chatId, members);
    this.changed("members", chatId);
  }

  /** What a chat is called here: the group's name, or the other person's. */
  title(chat) {
    if (!chat) return "";
    if (chat.kind === "direct") {
      const other = this.partner(chat);
      return other ? other.display_name || other.username : "Direct chat";
    }
    return chat.name || `Group ${chat.id}`;
  }

  /**
   * Messages (normalized) arrived for a chat, live or fetched: merged into its timeline,
   * and the chat's summary (last message, seq, unread count, activity) moved forward.
   * Returns false when the chat is not known here (the caller reloads the list).
   */
  addMessages(chatId, messages) {
    const chat = this.chats.get(chatId);
    if (this.timelines.has(chatId)) {
      if (this.timeline(chatId).merge(messages)) this.changed("messages", chatId);
    }
    const mine = new Set(messages.filter((m) => m.sender_id === this.me?.id).map((m) => m.client_id));
    const pending = this.pending.get(chatId);
    if (pending?.some((p) => mine.has(p.client_id))) {
      this.pending.set(chatId, pending.filter((p) => !mine.has(p.client_id)));
      this.changed("pending", chatId);
    }
    if (!chat) return false;
    let newest = chat.last_message;
    for (const message of messages) {
      if (!newest || message.seq >= newest.seq) newest = message;
      // Someone who sent a message has stopped typing it.
      this.typing.get(chatId)?.delete(message.sender_id);
    }
    if (newest && newest !== chat.last_message) {
      const lastSeq = Math.max(chat.last_seq, newest.seq);
      const lastRead = chat.last_read_seq ?? 0;
      this.chats.set(chatId, {
        ...chat,
        last_message: newest,
        last_seq: lastSeq,
        unread_count: Math.max(0, lastSeq - lastRead),
        last_activity_at:
          millis(newest.created_at) > millis(chat.last_activity_at) ? newest.created_at : chat.last_activity_at,
      });
      this.changed("chats", chatId);
      this.changed("typing", chatId);
    }
    return true;
  }

  /** An edit or deletion event: the loaded copy and the list's preview change. */
  patchMessage(chatId, seq, fields) {
    if (this.timelines.get(chatId)?.patch(seq, fields)) this.changed("messages", chatId);
    const chat = this.chats.get(chatId);
    if (chat?.last_message?.seq === seq) {
      this.chats.set(chatId, { ...chat, last_message: { ...chat.last_message, ...fields } });
      this.changed("chats", chatId);
    }
  }

  /**
   * A deletion (an event, or mine): the text, files, reactions and mentions go; a mention of
   * me it held no longer counts as unread.
   */
  messageDeleted(chatId, seq, deletedAt) {
    const chat = this.chats.get(chatId);
    const known = this.timelines.get(chatId)?.messages.get(seq) ??
      (chat?.last_message?.seq === seq ? chat.last_message : null);
    if (chat && known && this.mentionsMe(known) && seq > (chat.last_read_seq ?? 0) && chat.unread_mentions > 0) {
      this.chats.set(chatId, { ...chat, unread_mentions: chat.unread_mentions - 1 });
      this.changed("chats", chatId);
    }
    this.patchMessage(chatId, seq, { content: "", deleted_at: deletedAt, reactions: [], mentions: [], attachments: [] });
  }

  /** Whether a message (not deleted) mentions me. */
  mentionsMe(message) {
    return Boolean(this.me && !message.deleted_at && message.mentions?.includes(this.me.id));
  }

  /**
   * A new message mentioning me arrived live: one more unread mention in its chat (the
   * list's `unread_mentions` counted those before it). Muted chats count too.
   */
  mentioned(chatId) {
    const chat = this.chats.get(chatId);
    if (!chat) return;
    this.chats.set(chatId, { ...chat, unread_mentions: (chat.unread_mentions ?? 0) + 1 });
    this.changed("chats", chatId);
  }

  /** How many reaction events changed a message here: what setReactions compares. */
  reactionVersion(messageId) {
    return this.#reactionEvents.get(messageId) ?? 0;
  }

  /** A `chat.reaction` event: the loaded copy of the message changes in place. */
  reacted(chatId, { message_id: messageId, seq, user_id: userId, emoji, added, count }) {
    this.#reactionEvents.set(messageId, this.reactionVersion(messageId) + 1);
    const message = this.timelines.get(chatId)?.messages.get(seq);
    if (!message || message.id !== messageId) return;
    const me = userId === this.me?.id ? added : undefined;
    this.patchMessage(chatId, seq, { reactions: withReaction(message.reactions, emoji, count, me) });
  }

  /**
   * A message's reactions as an answer to my reacting gave them. The answer and the
   * events of others travel apart: when an event changed the message since the
   * request left (`version`, from reactionVersion), the events' counts are the newer
   * ones and only whether I hold `emoji` is taken from the answer.
   */
  setReactions(chatId, seq, messageId, reactions, version, emoji) {
    const message = this.timelines.get(chatId)?.messages.get(seq);
    if (!message || message.id !== messageId) return;
    if (this.reactionVersion(messageId) === version) {
      this.patchMessage(chatId, seq, { reactions });
      return;
    }
    const me = reactions.find((r) => r.emoji === emoji)?.me ?? false;
    this.patchMessage(chatId, seq, {
      reactions: message.reactions.map((r) => (r.emoji === emoji ? { ...r, me } : r)),
    });
  }

  /** My read marker moved (here or in another tab). */
  markedRead(chatId, seq) {
    const chat = this.chats.get(chatId);
    if (!chat || seq <= (chat.last_read_seq ?? 0)) return;
    this.chats.set(chatId, {
      ...chat,
      last_read_seq: seq,
      unread_count: Math.max(0, chat.last_seq - seq),
      unread_mentions: this.#mentionsAfter(chat, seq),
    });
    this.changed("chats", chatId);
  }

  /** Unread mentions of me once my marker is at `seq`. */
  #mentionsAfter(chat, seq) {
    const counted = chat.unread_mentions ?? 0;
    if (counted === 0 || seq >= chat.last_seq) return 0;
    // Every message after the marker is loaded: count them.
    const timeline = this.timelines.get(chat.id);
    if (timeline?.loaded && timeline.oldest <= seq + 1 && timeline.newest >= chat.last_seq) {
      return timeline.sorted().filter((m) => m.seq > seq && this.mentionsMe(m)).length;
    }
    return Math.min(counted, chat.last_seq - seq);
  }

  /** Someone else read up to `seq`. */
  readByOther(chatId, userId, seq) {
    if (this.#raiseRead(chatId, userId, seq)) this.changed("read", chatId);
  }

  /**
   * The others' read markers as a member list gave them (`last_read_seq`): what "Seen"
   * shows after a reload, before any `chat.read` event. Markers only move forward, so
   * the higher of the list's and the events' wins, whichever arrived first.
   */
  seedReads(chatId, members) {
    let changed = false;
    for (const member of members) {
      if (member.user_id === this.me?.id || typeof member.last_read_seq !== "number") continue;
      changed = this.#raiseRead(chatId, member.user_id, member.last_read_seq) || changed;
    }
    if (changed) this.changed("read", chatId);
  }

  #raiseRead(chatId, userId, seq) {
    let marks = this.readBy.get(chatId);
    if (!marks) {
      marks = new Map();
      this.readBy.set(chatId, marks);
    }
    if (seq <= (marks.get(userId) ?? 0)) return false;
    marks.set(userId, seq);
    return true;
  }

  /** A `presence` event: the newest news there is. */
  setPresence(userId, online, lastSeenAt) {
    this.presence.set(userId, { online, last_seen_at: lastSeenAt ?? null, at: performance.now() });
    this.changed("presence");
  }

  /**
   * Presence as a list answer gave it (`[{user_id, online, last_seen_at}]`), asked for
   * at `requestedAt` (performance.now()). An event heard after the request left may be
   * newer than the answer, so it is kept; anything heard before is replaced. `online:
   * null` (the server could not read presence) changes nothing.
   */
  seedPresence(people, requestedAt = -Infinity) {
    let changed = false;
    for (const person of people) {
      if (typeof person.online !== "boolean") continue;
      const known = this.presence.get(person.user_id);
      if (known && known.at >= requestedAt) continue;
      const lastSeen = person.last_seen_at ?? null;
      if (known?.online !== person.online || known?.last_seen_at !== lastSeen) changed = true;
      this.presence.set(person.user_id, { online: person.online, last_seen_at: lastSeen, at: requestedAt });
    }
    if (changed) this.changed("presence");
  }

  /** Someone is typing in a chat: shown for a few seconds unless renewed. */
  setTyping(chatId, userId, username) {
    let typing = this.typing.get(chatId);
    if (!typing) {
      typing = new Map();
      this.typing.set(chatId, typing);
    }
    typing.set(userId, { username, until: Date.now() + TYPING_SHOWN_MS });
    this.changed("typing", chatId);
    setTimeout(() => this.changed("typing", chatId), TYPING_SHOWN_MS + 50);
  }

  /** Usernames typing in a chat now. */
  typingIn(chatId) {
    const now = Date.now();
    return [...(this.typing.get(chatId)?.values() ?? [])]
      .filter((t) => t.until > now)
      .map((t) => t.username);
  }

  pendingIn(chatId) {
    return this.pending.get(chatId) ?? [];
  }

  setPending(chatId, items) {
    this.pending.set(chatId, items);
    this.changed("pending", chatId);
  }
}
