// One message of a conversation, and the date separators between them.

import { h, linkify } from "../dom.js";
import { dayLabel, fullTime, timeOf } from "../format.js";
import { attachmentList, pendingFiles } from "./attachments.js";
import { reactButton, reactionChips } from "./reactions.js";

const QUOTE_CHARS = 120;

// `@name` as the server reads it (docs/api.md, "Mentions"): an `@` not after a letter,
// digit or username character, then a username's characters less a trailing `.`/`-`.
const MENTION = /(?<![\p{L}\p{N}_.-])@([A-Za-z0-9_.-]+)/gu;

/**
 * Plain text with its mentions as `<span class="mention">` (text nodes both): the names
 * of `names` (a Set, lowercase), or every well-formed one when it is "*".
 */
function withMentions(text, names) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(MENTION)) {
    const name = match[1].replace(/[.-]+$/, "");
    if (name.length < 3 || name.length > 32) continue;
    if (names !== "*" && !names.has(name.toLowerCase())) continue;
    parts.push(text.slice(last, match.index), h("span", { class: "mention" }, `@${name}`));
    last = match.index + 1 + name.length;
  }
  parts.push(text.slice(last));
  return parts;
}

/** A message's text as nodes: links, and the mentions `mentionNames` names. */
function messageText(content, mentionNames) {
  if (!mentionNames) return linkify(content);
  const names = mentionNames === "*" ? "*" : new Set(mentionNames.split(" "));
  return linkify(content, (part) => withMentions(part, names));
}

/** "📎 a.png, b.pdf": what stands for a message of files alone. */
function filesText(attachments) {
  return `📎 ${attachments.map((a) => a.filename).join(", ")}`;
}

function excerpt(text) {
  return text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}…` : text;
}

/** The quoted message a reply answers (if it is loaded). */
function quote(original, myId) {
  if (!original) return h("p", { class: "reply-quote" }, "↪ in reply to an earlier message");
  const who = original.sender_id === myId ? "You" : original.sender ?? "someone";
  return h(
    "p",
    { class: "reply-quote" },
    h("span", { class: "quote-sender" }, `↪ ${who}: `),
    original.deleted_at ? "message deleted" : excerpt(original.content || filesText(original.attachments)),
  );
}

/**
 * A key that changes whenever the element must be redrawn: the message's state, its
 * files, reactions and highlighted names, the quoted message's state, and the read line under it.
 */
export function messageKey(message, original, seen, mentionNames) {
  return [
    message.seq,
    message.id,
    message.edited_at,
    message.deleted_at,
    message.attachments.map((a) => a.id).join(","),
    JSON.stringify(message.reactions),
    mentionNames ?? "",
    original ? `${original.id}:${original.edited_at}:${original.deleted_at}` : "",
    seen ?? "",
  ].join("|");
}

/**
 * Draws a message. `actions` has `reply`, `edit`, `remove` and `react` callbacks, and
 * `files`, `whenShown` and `fileFailed` for its files (see attachmentList); edit and
 * delete are offered on one's own messages only. `mentionNames`: the lowercase
 * usernames its text mentions, space-separated ("*": some are unknown here, so any
 * `@name`; empty: none).
 */
export function messageItem(message, { mine, myId, original, seen, mentionNames, actions }) {
  const deleted = Boolean(message.deleted_at);
  const sender = message.sender ?? "deleted account";
  const mentionsMe = !deleted && message.mentions.includes(myId);
  const react = (emoji, add) => actions.react(message, emoji, add);
  const controls = [];
  if (!deleted) {
    controls.push(
      h("button", { type: "button", class: "link", "aria-label": `Reply to ${sender}`, on: { click: () => actions.reply(message) } }, "Reply"),
      reactButton(react),
    );
    if (mine) {
      controls.push(
        h("button", { type: "button", class: "link", "aria-label": "Edit your message", on: { click: () => actions.edit(message) } }, "Edit"),
        h("button", { type: "button", class: "link danger", "aria-label": "Delete your message", on: { click: (e) => confirmDelete(e.currentTarget, message, actions) } }, "Delete"),
      );
    }
  }
  return h(
    "li",
    {
      class: `message${mine ? " mine" : ""}${deleted ? " deleted" : ""}${mentionsMe ? " mentions-me" : ""}`,
      id: `message-${message.id}`,
      dataset: { seq: message.seq, id: message.id },
    },
    h(
      "div",
      { class: "bubble" },
      h(
        "p",
        { class: "meta" },
        h("span", { class: "sender" }, mine ? "You" : sender),
        " ",
        h("time", { datetime: message.created_at, title: fullTime(message.created_at) }, timeOf(message.created_at)),
        message.edited_at && !deleted ? h("span", { class: "edited" }, " (edited)") : null,
        mentionsMe ? h("span", { class: "mentions-you" }, " · mentions you") : null,
      ),
      message.reply_to ? quote(original, myId) : null,
      deleted
        ? h("p", { class: "text" }, "Message deleted")
        : message.content
          ? h("p", { class: "text" }, messageText(message.content, mentionNames))
          : null,
      deleted ? null : attachmentList(message.attachments, actions),
      deleted ? null : reactionChips(message.reactions, react),
      controls.length ? h("div", { class: "actions" }, controls) : null,
    ),
    seen ? h("p", { class: "seen" }, seen) : null,
  );
}

// Deleting asks once more, in place (a dialog would steal focus and block the page).
function confirmDelete(button, message, actions) {
  const bar = button.parentElement;
  const saved = [...bar.childNodes];
  const restore = () => {
    bar.replaceChildren(...saved);
    button.focus();
  };
  const yes = h("button", { type: "button", class: "link danger", on: { click: () => actions.remove(message) } }, "Yes, delete");
  bar.replaceChildren(
    h("span", {}, "Delete this message? "),
    yes,
    h("button", { type: "button", class: "link", on: { click: restore } }, "Cancel"),
  );
  yes.focus();
}

/** A date separator. */
export function daySeparator(iso) {
  return h("li", { class: "day", role: "separator" }, h("span", {}, dayLabel(iso)));
}

/** A message still being sent (or that failed), mine, at the end of the list. */
export function pendingItem(item, { retry, discard }) {
  const failed = item.state === "failed";
  return h(
    "li",
    { class: `message mine pending${failed ? " failed" : ""}`, dataset: { clientId: item.client_id } },
    h(
      "div",
      { class: "bubble" },
      h("p", { class: "meta" }, h("span", { class: "sender" }, "You"), " ", h("span", { class: "sending" }, failed ? "not sent" : "sending…")),
      item.content ? h("p", { class: "text" }, linkify(item.content)) : null,
      pendingFiles(item.attachments),
      failed
        ? h("p", { class: "send-error", role: "alert" }, item.error)
        : item.error
          ? h("p", { class: "send-waiting" }, "Waiting for the server; it will be sent when it is back.")
          : null,
      failed
        ? h(
            "div",
            { class: "actions visible" },
            h("button", { type: "button", class: "link", on: { click: () => retry(item) } }, "Retry"),
            h("button", { type: "button", class: "link danger", on: { click: () => discard(item) } }, "Discard"),
          )
        : null,
    ),
  );
}
