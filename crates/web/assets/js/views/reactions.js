// Reactions under a message: a chip per emoji ("👍 2", pressed when one is mine) that
// adds or takes back mine, and a small picker of common emoji.

import { h } from "../dom.js";

/** What the picker offers. */
export const COMMON_EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

/**
 * The chips of a message's reactions, in the order they were first used (null when it
 * has none). `react(emoji, add)` adds mine or takes it back.
 */
export function reactionChips(reactions, react) {
  if (!reactions.length) return null;
  return h(
    "div",
    { class: "reactions", role: "group", "aria-label": "Reactions" },
    reactions.map(({ emoji, count, me }) => {
      const label = `${emoji} ${count}${me ? ", yours among them: press to take it back" : ": press to add yours"}`;
      return h(
        "button",
        {
          type: "button",
          class: `reaction${me ? " me" : ""}`,
          dataset: { emoji },
          "aria-pressed": String(Boolean(me)),
          "aria-label": label,
          title: label,
          on: { click: () => react(emoji, !me) },
        },
        h("span", { class: "emoji" }, emoji),
        " ",
        h("span", { class: "count" }, String(count)),
      );
    }),
  );
}

/** The button that opens the picker beside it; a pick calls `react(emoji, true)`. */
export function reactButton(react) {
  const button = h(
    "button",
    { type: "button", class: "link react-button", "aria-label": "Add a reaction", "aria-expanded": "false" },
    "React",
  );
  button.addEventListener("click", () => togglePicker(button, react));
  return button;
}

// The picker opens in place, under the message's actions (which stay shown meanwhile);
// picking, the button again or Escape closes it.
function togglePicker(button, react) {
  const bar = button.parentElement;
  const open = bar.parentElement.querySelector(".reaction-picker");
  const close = (picker) => {
    picker.remove();
    bar.classList.remove("visible");
    button.setAttribute("aria-expanded", "false");
  };
  if (open) {
    close(open);
    return;
  }
  const picker = h(
    "div",
    {
      class: "reaction-picker",
      role: "group",
      "aria-label": "Pick a reaction",
      on: {
        keydown: (event) => {
          if (event.key !== "Escape") return;
          event.preventDefault();
          close(picker);
          button.focus();
        },
      },
    },
    COMMON_EMOJI.map((emoji) =>
      h(
        "button",
        {
          type: "button",
          dataset: { emoji },
          "aria-label": `React with ${emoji}`,
          title: `React with ${emoji}`,
          on: {
            click: () => {
              close(picker);
              button.focus();
              react(emoji, true);
            },
          },
        },
        emoji,
      ),
    ),
  );
  bar.after(picker);
  bar.classList.add("visible");
  button.setAttribute("aria-expanded", "true");
  picker.querySelector("button").focus();
}
