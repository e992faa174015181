// Building the page. Every piece of user text reaches the DOM as a text node (or
// textContent), never as markup: names, messages and server details cannot inject HTML.

/**
 * Creates an element: `h("button", { class: "primary", on: { click } }, "Send")`.
 * Props are attributes (`true` → empty attribute, `false`/null/undefined → absent),
 * except `class`, `text` (textContent), `dataset` and `on` (event listeners).
 * Children are nodes, strings (text) or arrays of them.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (key.toLowerCase().startsWith("on")) {
      // Inline handlers are code in attributes: the CSP forbids them, and so do we.
      throw new Error(`use the "on" prop, not the attribute ${key}`);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Appends nodes, strings (as text) and nested arrays; skips null, undefined and false. */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/**
 * Puts `desired` ([key, make] pairs) in order as the children of `parent`, reusing the
 * element of `nodes` (the map returned by the previous call) whose key is unchanged
 * and calling `make()` for the others. Unchanged elements are never replaced, so they
 * keep focus, hover and selection while others redraw. Returns the new map.
 */
export function reconcile(parent, desired, nodes) {
  const next = new Map();
  let cursor = parent.firstChild;
  for (const [key, make] of desired) {
    const el = nodes.get(key) ?? make();
    next.set(key, el);
    if (el === cursor) cursor = cursor.nextSibling;
    else parent.insertBefore(el, cursor);
  }
  while (cursor) {
    const following = cursor.nextSibling;
    cursor.remove();
    cursor = following;
  }
  return next;
}

// http(s) links in message text; trailing punctuation is left out of the link.
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+/gi;
const TRAILING = /[.,;:!?'"]+$/;

/**
 * Message text as nodes: plain text, with http(s) URLs as links that open apart.
 * `plain(text)` gives what the text between links becomes (strings or nodes, or an
 * array of them): the text itself unless told.
 */
export function linkify(text, plain = (part) => part) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    let raw = match[0].replace(TRAILING, "");
    // "(see the link)": a closing parenthesis without an opening one ends the sentence.
    if (raw.endsWith(")") && !raw.includes("(")) raw = raw.slice(0, -1);
    let url;
    try {
      url = new URL(raw);
    } catch {
      continue;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") continue;
    append(fragment, [plain(text.slice(last, match.index))]);
    fragment.append(
      h("a", { href: url.href, target: "_blank", rel: "noopener noreferrer nofollow" }, raw),
    );
    last = match.index + raw.length;
  }
  append(fragment, [plain(text.slice(last))]);
  return fragment;
}

/** Announces `text` to screen readers through the page's polite live region. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A new text node after a tick is read even when the text repeats.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}
