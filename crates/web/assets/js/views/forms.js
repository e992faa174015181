// Form plumbing shared by the views: labelled fields, problem details shown next to
// the fields they name, and buttons that say when they are busy.

import { h, replace } from "../dom.js";

let fieldIds = 0;

/**
 * A labelled input: `field("Username", { name: "username", autocomplete: "username" })`.
 * Its error line is tied to it with aria-describedby.
 */
export function field(label, props = {}) {
  const id = props.id ?? `f${++fieldIds}`;
  const errorId = `${id}-error`;
  const input =
    props.type === "textarea"
      ? h("textarea", { ...props, type: null, id, "aria-describedby": errorId })
      : h("input", { type: "text", ...props, id, "aria-describedby": errorId });
  return h(
    "div",
    { class: "field", dataset: { field: props.name ?? "" } },
    h("label", { for: id }, label),
    input,
    h("p", { class: "field-error", id: errorId }),
  );
}

/** A checkbox with its label after it. */
export function checkbox(label, props = {}) {
  const id = props.id ?? `f${++fieldIds}`;
  return h(
    "div",
    { class: "field checkbox" },
    h("input", { type: "checkbox", ...props, id }),
    h("label", { for: id }, label),
  );
}

/** The form's values by input name (checkboxes as booleans). */
export function values(form) {
  const result = {};
  for (const input of form.querySelectorAll("input[name], textarea[name], select[name]")) {
    result[input.name] = input.type === "checkbox" ? input.checked : input.value;
  }
  return result;
}

/**
 * Shows an ApiError on a form: each field error under its field (the field is marked
 * invalid and the first one focused), everything else in the form's alert line.
 */
export function showError(form, error) {
  clearErrors(form);
  const general = form.querySelector(".form-error");
  let firstInvalid = null;
  const unplaced = [];
  for (const [name, problems] of Object.entries(error?.errors ?? {})) {
    const wrapper = form.querySelector(`.field[data-field="${CSS.escape(name)}"]`);
    if (!wrapper) {
      unplaced.push(`${name}: ${[].concat(problems).join(", ")}`);
      continue;
    }
    const input = wrapper.querySelector("input, textarea");
    input.setAttribute("aria-invalid", "true");
    wrapper.querySelector(".field-error").textContent = [].concat(problems).join(", ");
    firstInvalid ??= input;
  }
  const text = unplaced.length ? unplaced.join("; ") : firstInvalid ? "" : error?.message ?? String(error);
  if (general) general.textContent = text;
  firstInvalid?.focus();
}

export function clearErrors(form) {
  const general = form.querySelector(".form-error");
  if (general) general.textContent = "";
  for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

/** The alert line a form shows general errors in. */
export function formError() {
  return h("p", { class: "form-error", role: "alert" });
}

/**
 * Runs `action` with `button` disabled and saying `busyText`; errors go to `form`.
 * Resolves with the action's result, or undefined after an error.
 */
export async function busy(button, busyText, form, action) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  replace(button, busyText);
  try {
    if (form) clearErrors(form);
    return await action();
  } catch (error) {
    if (form) showError(form, error);
    else throw error;
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    replace(button, label);
  }
}
