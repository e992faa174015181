// Log in and sign up.

import { h, replace } from "../dom.js";
import { busy, field, formError, values } from "./forms.js";

/**
 * The log-in / sign-up screen. `reason` (optional) says why the person is here again
 * (session ended, account deactivated).
 */
export function authView(session, reason = null) {
  const status = h("p", { class: "notice", role: "status" }, reason ?? "");
  status.hidden = !reason;

  const loginForm = h(
    "form",
    { class: "auth-form", id: "login-form", "aria-labelledby": "login-title", novalidate: true },
    h("h2", { id: "login-title" }, "Log in"),
    field("Username or e-mail", { name: "username", autocomplete: "username", required: true }),
    field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    formError(),
    h("button", { type: "submit", class: "primary" }, "Log in"),
  );
  loginForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const { username, password } = values(loginForm);
    busy(loginForm.querySelector("button[type=submit]"), "Logging in…", loginForm, () =>
      session.login(username.trim(), password),
    );
  });

  const signupForm = h(
    "form",
    { class: "auth-form", id: "signup-form", "aria-labelledby": "signup-title", novalidate: true },
    h("h2", { id: "signup-title" }, "Create an account"),
    field("Username", { name: "username", autocomplete: "username", required: true, maxlength: 32 }),
    field("E-mail", { name: "email", type: "email", autocomplete: "email", required: true }),
    field("Display name (optional)", { name: "display_name", autocomplete: "nickname", maxlength: 64 }),
    field("Password (at least 8 characters)", {
      name: "password",
      type: "password",
      autocomplete: "new-password",
      required: true,
      minlength: 8,
    }),
    formError(),
    h("button", { type: "submit", class: "primary" }, "Sign up"),
  );
  signupForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const v = values(signupForm);
    const fields = { username: v.username.trim(), email: v.email.trim(), password: v.password };
    if (v.display_name.trim()) fields.display_name = v.display_name.trim();
    busy(signupForm.querySelector("button[type=submit]"), "Signing up…", signupForm, () =>
      session.register(fields),
    );
  });

  // Two tabs on small screens; side by side on wide ones (CSS).
  const show = (which) => {
    loginForm.hidden = which !== "login";
    signupForm.hidden = which !== "signup";
    loginTab.setAttribute("aria-pressed", String(which === "login"));
    signupTab.setAttribute("aria-pressed", String(which === "signup"));
    (which === "login" ? loginForm : signupForm).querySelector("input").focus();
  };
  const loginTab = h("button", { type: "button", id: "show-login", on: { click: () => show("login") } }, "Log in");
  const signupTab = h("button", { type: "button", id: "show-signup", on: { click: () => show("signup") } }, "Sign up");

  const view = h(
    "main",
    { class: "auth", id: "auth" },
    h("h1", {}, "Chat"),
    status,
    h("div", { class: "auth-switch", role: "group", "aria-label": "Log in or sign up" }, loginTab, signupTab),
    loginForm,
    signupForm,
  );
  view.show = show;
  return view;
}

/** Shown while a reloaded page resumes its session. */
export function resumingView(text = "Loading…") {
  const line = h("p", { class: "notice", role: "status" }, text);
  return Object.assign(h("main", { class: "auth" }, h("h1", {}, "Chat"), line), {
    say: (t) => replace(line, t),
  });
}
