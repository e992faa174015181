// Site administration (accounts with is_admin): every account — find, deactivate and
// reactivate, grant and withdraw admin rights — and every chat — find, see a group's
// members, delete a group. What the seeds' Django admin did. The tab is shown to site
// admins only, and the API refuses everyone else (403 admin_only) whatever the page.

import { h, replace } from "../dom.js";
import { fullTime, shortWhen } from "../format.js";
import { busy, field, formError, values } from "./forms.js";
import { confirmInPlace } from "./members.js";

function flag(text, off = false) {
  return h("span", { class: `flag${off ? " off" : ""}` }, text);
}

export class AdminView {
  constructor(client) {
    this.client = client;
    this.alert = h("p", { class: "form-error", role: "alert", id: "admin-alert" });

    this.userForm = h(
      "form",
      { class: "search-form", role: "search", id: "admin-user-search" },
      field("Find accounts (name or e-mail)", { name: "q", type: "search", id: "admin-user-q", autocomplete: "off" }),
      h("button", { type: "submit" }, "Search"),
      formError(),
    );
    this.users = h("ul", { class: "admin-list", id: "admin-users", "aria-labelledby": "admin-users-title" });
    this.moreUsers = h("button", { type: "button", class: "secondary", id: "admin-users-more", hidden: true }, "More accounts");

    this.chatForm = h(
      "form",
      { class: "search-form", role: "search", id: "admin-chat-search" },
      field("Find groups by name", { name: "q", type: "search", id: "admin-chat-q", autocomplete: "off" }),
      h("button", { type: "submit" }, "Search"),
      formError(),
    );
    this.chats = h("ul", { class: "admin-list", id: "admin-chats", "aria-labelledby": "admin-chats-title" });
    this.moreChats = h("button", { type: "button", class: "secondary", id: "admin-chats-more", hidden: true }, "More chats");

    this.el = h(
      "section",
      { class: "admin", id: "admin", "aria-labelledby": "admin-title" },
      h(
        "div",
        { class: "admin-head" },
        h("a", { class: "back", href: "#/chats", "aria-label": "Back to chats" }, "←"),
        h("h2", { id: "admin-title" }, "Administration"),
      ),
      this.alert,
      h(
        "section",
        { "aria-labelledby": "admin-users-title" },
        h("h3", { id: "admin-users-title" }, "Accounts"),
        this.userForm,
        this.users,
        this.moreUsers,
      ),
      h(
        "section",
        { "aria-labelledby": "admin-chats-title" },
        h("h3", { id: "admin-chats-title" }, "Chats"),
        this.chatForm,
        this.chats,
        this.moreChats,
      ),
    );

    if (!client.store.me?.is_admin) {
      replace(this.alert, "This page is for site administrators.");
      this.userForm.hidden = this.chatForm.hidden = true;
      return;
    }
    this.userForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.searchUsers(values(this.userForm).q.trim());
    });
    this.chatForm.addEventListener("submit", (e) => {
      e.preventDefault();
      this.searchChats(values(this.chatForm).q.trim());
    });
    this.moreUsers.addEventListener("click", () => this.#moreUsers());
    this.moreChats.addEventListener("click", () => this.#moreChats());
    this.searchUsers("");
    this.searchChats("");
  }

  destroy() {}

  focus() {
    this.el.querySelector("#admin-user-q")?.focus();
  }

  // ---- accounts ---------------------------------------------------------------------

  async searchUsers(q) {
    this.userQuery = q;
    const button = this.userForm.querySelector("button[type=submit]");
    const page = await busy(button, "Searching…", this.userForm, () => this.client.adminUsers(q));
    if (!page) return;
    replace(this.users, page.items.length ? page.items.map((u) => this.#userRow(u)) : h("li", { class: "empty" }, q ? `No account matches “${q}”.` : "No accounts."));
    this.#pageEnd(this.moreUsers, page.next_cursor, "usersCursor");
  }

  async #moreUsers() {
    try {
      const page = await busy(this.moreUsers, "Loading…", null, () => this.client.adminUsers(this.userQuery, this.usersCursor));
      this.users.append(...page.items.map((u) => this.#userRow(u)));
      this.#pageEnd(this.moreUsers, page.next_cursor, "usersCursor");
    } catch (error) {
      replace(this.alert, error.message);
    }
  }

  #pageEnd(button, cursor, key) {
    this[key] = cursor;
    button.hidden = !cursor;
  }

  #userRow(user) {
    const me = this.client.store.me?.id;
    const actions = h("span", { class: "admin-actions" });
    if (user.id === me) {
      actions.append(h("span", { class: "muted" }, "you"));
    } else {
      actions.append(
        h(
          "button",
          {
            type: "button",
            class: user.is_active ? "danger" : "secondary",
            dataset: { action: user.is_active ? "deactivate" : "reactivate" },
            "aria-label": `${user.is_active ? "Deactivate" : "Reactivate"} ${user.username}`,
            on: {
              click: (e) => {
                if (!user.is_active) return this.#updateUser(e.currentTarget, user, { is_active: true }, "Reactivating…");
                // Deactivating logs the person out everywhere: ask once more.
                confirmInPlace(actions, `Deactivate ${user.username}? Their sessions end now.`, "Yes, deactivate", (yes) =>
                  this.#updateUser(yes, user, { is_active: false }, "Deactivating…"),
                );
              },
            },
          },
          user.is_active ? "Deactivate" : "Reactivate",
        ),
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            dataset: { action: user.is_admin ? "demote" : "promote" },
            "aria-label": user.is_admin ? `Withdraw ${user.username}'s admin rights` : `Make ${user.username} a site admin`,
            on: {
              click: (e) =>
                this.#updateUser(e.currentTarget, user, { is_admin: !user.is_admin }, user.is_admin ? "Withdrawing…" : "Granting…"),
            },
          },
          user.is_admin ? "Remove admin" : "Make admin",
        ),
      );
    }
    return h(
      "li",
      { dataset: { userId: user.id, active: String(user.is_active), admin: String(user.is_admin) } },
      h(
        "span",
        { class: "admin-info" },
        h("span", {}, h("span", { class: "person-name" }, user.display_name || user.username), " ", h("span", { class: "person-handle" }, `@${user.username}`)),
        h("span", { class: "muted" }, `${user.email} · joined ${shortWhen(user.created_at)}`),
      ),
      user.is_admin ? flag("site admin") : null,
      user.is_active ? null : flag("deactivated", true),
      actions,
    );
  }

  async #updateUser(button, user, fields, busyText) {
    replace(this.alert);
    try {
      const updated = await busy(button, busyText, null, () => this.client.adminUpdateUser(user.id, fields));
      const row = this.users.querySelector(`li[data-user-id="${user.id}"]`);
      const fresh = this.#userRow(updated);
      row?.replaceWith(fresh);
      fresh.querySelector(`[data-action]`)?.focus();
    } catch (error) {
      replace(this.alert, error.message);
    }
  }

  // ---- chats ------------------------------------------------------------------------

  async searchChats(q) {
    this.chatQuery = q;
    const button = this.chatForm.querySelector("button[type=submit]");
    const page = await busy(button, "Searching…", this.chatForm, () => this.client.adminChats(q));
    if (!page) return;
    replace(this.chats, page.items.length ? page.items.map((c) => this.#chatRow(c)) : h("li", { class: "empty" }, q ? `No group matches “${q}”.` : "No chats."));
    this.#pageEnd(this.moreChats, page.next_cursor, "chatsCursor");
  }

  async #moreChats() {
    try {
      const page = await busy(this.moreChats, "Loading…", null, () => this.client.adminChats(this.chatQuery, this.chatsCursor));
      this.chats.append(...page.items.map((c) => this.#chatRow(c)));
      this.#pageEnd(this.moreChats, page.next_cursor, "chatsCursor");
    } catch (error) {
      replace(this.alert, error.message);
    }
  }

  #chatRow(chat) {
    const group = chat.kind === "group";
    const title = group ? chat.name ?? `Group ${chat.id}` : `Direct chat ${chat.id}`;
    const members = h("ul", { class: "admin-members", id: `admin-members-${chat.id}`, hidden: true, "aria-label": `Members of ${title}` });
    const actions = h("span", { class: "admin-actions" });
    if (group) {
      const toggle = h(
        "button",
        { type: "button", class: "secondary", "aria-expanded": "false", "aria-controls": members.id, dataset: { action: "members" }, "aria-label": `Members of ${title}` },
        "Members",
      );
      toggle.addEventListener("click", () => this.#toggleMembers(toggle, chat, members));
      const del = h("button", { type: "button", class: "danger", dataset: { action: "delete" }, "aria-label": `Delete ${title}` }, "Delete");
      del.addEventListener("click", () =>
        confirmInPlace(actions, `Delete ${title} and all its messages?`, "Yes, delete", async (yes, restore) => {
          replace(this.alert);
          try {
            await busy(yes, "Deleting…", null, () => this.client.adminDeleteChat(chat.id));
            this.chats.querySelector(`li[data-chat-id="${chat.id}"]`)?.remove();
            this.client.dispatchEvent(new CustomEvent("toast", { detail: `${title} was deleted.` }));
          } catch (error) {
            replace(this.alert, error.message);
            restore();
          }
        }),
      );
      actions.append(toggle, del);
    } else {
      // Direct chats are private to their two members, site admins included.
      actions.append(h("span", { class: "muted" }, "private to its members"));
    }
    return h(
      "li",
      { dataset: { chatId: chat.id } },
      h(
        "span",
        { class: "admin-info" },
        h("span", { class: "group-name" }, title),
        h(
          "span",
          { class: "muted", title: fullTime(chat.last_activity_at) },
          `${group ? `${chat.visibility} group` : "direct"} · ${chat.member_count} member${chat.member_count === 1 ? "" : "s"} · active ${shortWhen(chat.last_activity_at)}`,
        ),
      ),
      actions,
      members,
    );
  }

  async #toggleMembers(toggle, chat, list) {
    if (!list.hidden) {
      list.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
      return;
    }
    replace(this.alert);
    try {
      const members = await busy(toggle, "Loading…", null, () => this.client.adminMembers(chat.id));
      replace(
        list,
        members.map((m) =>
          h(
            "li",
            { dataset: { userId: m.user_id } },
            h("span", { class: "person-name" }, m.display_name || m.username),
            " ",
            h("span", { class: "person-handle" }, `@${m.username}`),
            " · ",
            h("span", { class: `role role-${m.role}` }, m.role),
          ),
        ),
      );
      list.hidden = false;
      toggle.setAttribute("aria-expanded", "true");
    } catch (error) {
      replace(this.alert, error.message);
    }
  }
}
