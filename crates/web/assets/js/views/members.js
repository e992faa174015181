// A group's panel, beside its conversation: the group's details (edited by its owner
// and admins), its members with their roles and presence, and — for those allowed —
// adding people, removing members, changing roles and deleting the group. The rules
// mirror the server's (docs/api.md#permissions); the server decides anyway.

import { h, replace } from "../dom.js";
import { presenceDot } from "./chatlist.js";
import { busy, checkbox, field, formError, values } from "./forms.js";

const ROLE_ORDER = { owner: 0, admin: 1, member: 2 };

/** What I may do in a group, from my role there and my site admin flag. */
export function powers(chat, me) {
  const group = chat?.kind === "group";
  const role = chat?.role ?? null;
  const site = Boolean(me?.is_admin);
  const manager = role === "owner" || role === "admin";
  return {
    edit: group && (manager || site),
    add: group && (manager || site),
    roles: group && (role === "owner" || site),
    delete: group && (role === "owner" || site),
    /** Whether I may remove `target` (a member view). */
    remove(target) {
      if (!group || target.role === "owner" || target.user_id === me?.id) return false;
      if (role === "owner") return true;
      if (role === "admin") return target.role === "member";
      return site;
    },
  };
}

function person(user) {
  return h(
    "span",
    { class: "person" },
    h("span", { class: "person-name" }, user.display_name || user.username),
    " ",
    h("span", { class: "person-handle" }, `@${user.username}`),
  );
}

/** Asks once more, in place of `bar`'s buttons: "Remove @x? Yes / Cancel". */
export function confirmInPlace(bar, question, yesText, onYes) {
  const saved = [...bar.childNodes];
  const focusBack = document.activeElement;
  const restore = () => {
    bar.replaceChildren(...saved);
    if (focusBack && bar.contains(focusBack)) focusBack.focus();
  };
  const yes = h("button", { type: "button", class: "danger confirm-yes", on: { click: () => onYes(yes, restore) } }, yesText);
  bar.replaceChildren(
    h("span", { class: "confirm-question" }, question),
    " ",
    yes,
    h("button", { type: "button", class: "secondary", on: { click: restore } }, "Cancel"),
  );
  yes.focus();
}

export class MembersPanel {
  #offs = [];

  constructor(client, chatId, { onClose }) {
    this.client = client;
    this.store = client.store;
    this.chatId = chatId;
    this.onClose = onClose;

    this.alert = h("p", { class: "form-error", role: "alert" });
    this.closeButton = h("button", { type: "button", class: "secondary", id: "close-members", "aria-label": "Close group details", on: { click: () => onClose() } }, "Close");
    this.details = h("div", { class: "group-details", id: "group-details" });
    this.countTitle = h("h3", { id: "members-title" }, "Members");
    this.list = h("ul", { class: "people member-list", id: "member-list", "aria-labelledby": "members-title" });
    this.addSection = h("div", { class: "add-members", id: "add-members" });
    this.dangerZone = h("div", { class: "danger-zone", id: "danger-zone" });
    this.el = h(
      "aside",
      { class: "members-panel", id: "members-panel", "aria-labelledby": "group-panel-title", tabindex: "-1" },
      h("div", { class: "members-head" }, h("h2", { id: "group-panel-title" }, "Group"), this.closeButton),
      this.alert,
      this.details,
      this.countTitle,
      this.list,
      this.addSection,
      this.dangerZone,
    );
    this.#listen(this.el, "keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        onClose();
      }
    });
    this.#listen(this.store, "change", (e) => {
      const { kind, chatId: changed } = e.detail;
      if (kind === "members" && changed === this.chatId) this.renderMembers();
      else if (kind === "presence") this.renderMembers();
      else if (kind === "chats" && (changed === null || changed === this.chatId)) this.render();
    });
    this.#listen(client, "me", () => this.render());
    this.render();
    client.loadMembers(chatId).catch((error) => replace(this.alert, error.message));
  }

  #listen(target, event, handler) {
    target.addEventListener(event, handler);
    this.#offs.push(() => target.removeEventListener(event, handler));
  }

  destroy() {
    for (const off of this.#offs) off();
  }

  focus() {
    this.closeButton.focus();
  }

  get chat() {
    return this.store.chats.get(this.chatId);
  }

  get powers() {
    return powers(this.chat, this.store.me);
  }

  /** Everything that depends on my role (a role change redraws it all). */
  render() {
    const chat = this.chat;
    if (!chat) return;
    const key = JSON.stringify([chat.name, chat.description, chat.visibility, chat.role, this.store.me?.is_admin]);
    if (key === this.drawn) return this.renderMembers();
    this.drawn = key;
    this.#renderDetails(chat);
    this.#renderAdd();
    this.#renderDangerZone();
    this.renderMembers();
  }

  #renderDetails(chat) {
    if (!this.powers.edit) {
      replace(
        this.details,
        h("p", { class: "group-name" }, chat.name ?? ""),
        chat.description ? h("p", { class: "group-description" }, chat.description) : null,
        h("p", { class: "muted" }, chat.visibility === "public" ? "Public: anyone can find and join it." : "Private: members are added by the owner and admins."),
      );
      return;
    }
    const form = h(
      "form",
      { class: "group-settings", id: "group-settings-form", "aria-label": "Group settings", novalidate: true },
      field("Name", { name: "name", id: "settings-name", required: true, maxlength: 100, value: chat.name ?? "" }),
      field("Description", { name: "description", id: "settings-description", maxlength: 1000, value: chat.description ?? "" }),
      checkbox("Public: anyone can find and join it", { name: "public", id: "settings-public", checked: chat.visibility === "public" }),
      formError(),
      h("p", { class: "form-status", role: "status" }),
      h("button", { type: "submit", class: "primary" }, "Save changes"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const v = values(form);
      const fields = { name: v.name.trim(), description: v.description.trim(), visibility: v.public ? "public" : "private" };
      const saved = await busy(form.querySelector("button[type=submit]"), "Saving…", form, () =>
        this.client.updateGroup(this.chatId, fields),
      );
      // The saved group redrew the form (its fields changed): say so in the new one.
      const status = this.details.querySelector(".form-status");
      if (saved && status) status.textContent = "Saved.";
    });
    replace(this.details, form);
  }

  renderMembers() {
    const members = this.store.memberLists.get(this.chatId);
    if (!members) {
      replace(this.list, h("li", { class: "empty" }, "Loading members…"));
      return;
    }
    replace(this.countTitle, `Members (${members.length})`);
    const sorted = [...members].sort(
      (a, b) => ROLE_ORDER[a.role] - ROLE_ORDER[b.role] || (a.display_name || a.username).localeCompare(b.display_name || b.username),
    );
    // Redrawing replaces the rows: keep focus on the same control of the same member.
    const active = document.activeElement;
    const focusedRow = this.list.contains(active) ? active.closest("li[data-user-id]")?.dataset.userId : null;
    const focusedControl = focusedRow ? active.dataset.control : null;
    // … and a role picked but not applied yet: a live redraw (someone's presence, a new
    // member) must not quietly put the select back, or "Set" would apply the old role.
    const picked = new Map();
    for (const select of this.list.querySelectorAll("select[data-control='role']")) {
      const row = select.closest("li[data-user-id]");
      if (row && select.value !== row.dataset.role) picked.set(row.dataset.userId, select.value);
    }
    replace(this.list, sorted.map((member) => this.#memberRow(member)));
    for (const [userId, role] of picked) {
      const row = this.list.querySelector(`li[data-user-id="${userId}"]`);
      const select = row?.querySelector("select[data-control='role']");
      if (select && row.dataset.role !== role) select.value = role;
    }
    if (focusedRow && focusedControl) {
      this.list.querySelector(`li[data-user-id="${focusedRow}"] [data-control="${focusedControl}"]`)?.focus();
    }
    this.#markCandidates();
  }

  #memberRow(member) {
    const me = this.store.me?.id;
    const powers = this.powers;
    const controls = h("span", { class: "member-controls" });
    if (powers.roles && member.role !== "owner" && member.user_id !== me) {
      const id = `role-${this.chatId}-${member.user_id}`;
      const select = h(
        "select",
        { id, dataset: { control: "role" } },
        ["member", "admin", "owner"].map((role) =>
          h("option", { value: role, selected: role === member.role }, role),
        ),
      );
      // Applied by a button, not on "change": arrow keys on a closed select change its
      // value, and a keyboard user must not hand the group over by browsing options.
      const apply = h(
        "button",
        {
          type: "button",
          class: "secondary",
          dataset: { control: "set-role" },
          "aria-label": `Set ${member.username}'s role`,
          on: { click: () => this.#changeRole(select, member, controls) },
        },
        "Set",
      );
      controls.append(h("label", { for: id, class: "visually-hidden" }, `Role of ${member.username}`), select, apply);
    } else {
      controls.append(h("span", { class: `role role-${member.role}` }, member.role));
    }
    if (powers.remove(member)) {
      controls.append(
        h(
          "button",
          {
            type: "button",
            class: "link danger",
            dataset: { control: "remove" },
            "aria-label": `Remove ${member.username} from the group`,
            on: { click: () => this.#remove(member, controls) },
          },
          "Remove",
        ),
      );
    }
    return h(
      "li",
      { dataset: { userId: member.user_id, role: member.role } },
      presenceDot(this.store, member.user_id),
      person(member),
      member.user_id === me ? h("span", { class: "muted" }, "(you)") : null,
      controls,
    );
  }

  async #changeRole(select, member, controls) {
    const role = select.value;
    if (role === member.role) return;
    replace(this.alert);
    const apply = async () => {
      select.disabled = true;
      try {
        await this.client.changeRole(this.chatId, member.user_id, role);
      } catch (error) {
        replace(this.alert, error.message);
        this.renderMembers();
      }
    };
    if (role !== "owner") return apply();
    // Handing the group over cannot be undone by me: ask first.
    confirmInPlace(controls, `Make ${member.username} the owner? You become an admin.`, "Hand over", async (yes, restore) => {
      try {
        await busy(yes, "Handing over…", null, apply);
      } finally {
        restore();
      }
    });
    controls.querySelector(".secondary")?.addEventListener("click", () => this.renderMembers());
  }

  #remove(member, controls) {
    confirmInPlace(controls, `Remove ${member.username}?`, "Yes, remove", async (yes, restore) => {
      replace(this.alert);
      try {
        await busy(yes, "Removing…", null, () => this.client.removeMember(this.chatId, member.user_id));
      } catch (error) {
        replace(this.alert, error.message);
        restore();
      }
    });
  }

  #renderAdd() {
    if (!this.powers.add) {
      replace(this.addSection);
      return;
    }
    const form = h(
      "form",
      { class: "search-form", role: "search", id: "member-search-form" },
      field("Add people: search by name", { name: "q", type: "search", id: "member-search", autocomplete: "off" }),
      h("button", { type: "submit" }, "Search"),
      formError(),
    );
    this.candidates = h("ul", { class: "people search-results", id: "member-candidates", "aria-label": "People to add" });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const q = values(form).q.trim();
      const page = await busy(form.querySelector("button[type=submit]"), "Searching…", form, () => this.client.searchUsers(q));
      if (page) this.#drawCandidates(page.items, q);
    });
    replace(this.addSection, h("h3", {}, "Add people"), form, this.candidates);
  }

  #drawCandidates(users, q) {
    replace(
      this.candidates,
      users.length
        ? users.map((user) => {
            const add = h("button", { type: "button", class: "secondary", dataset: { control: "add" } }, "Add");
            add.addEventListener("click", async () => {
              replace(this.alert);
              try {
                await busy(add, "Adding…", null, () => this.client.addMember(this.chatId, user.id));
              } catch (error) {
                replace(this.alert, error.message);
              }
              this.#markCandidates();
            });
            return h("li", { dataset: { userId: user.id } }, person(user), add);
          })
        : h("li", { class: "empty" }, q ? `Nobody matches “${q}”.` : "Type a name to search."),
    );
    this.#markCandidates();
  }

  /** Candidates already in the group say so instead of offering "Add". */
  #markCandidates() {
    if (!this.candidates) return;
    const members = new Set((this.store.memberLists.get(this.chatId) ?? []).map((m) => m.user_id));
    for (const row of this.candidates.querySelectorAll("li[data-user-id]")) {
      const button = row.querySelector("button");
      const member = members.has(Number(row.dataset.userId));
      if (button.getAttribute("aria-busy")) continue;
      button.disabled = member;
      replace(button, member ? "Member" : "Add");
    }
  }

  #renderDangerZone() {
    const chat = this.chat;
    const buttons = [];
    if (this.powers.delete) {
      const del = h("button", { type: "button", class: "danger", id: "delete-group" }, "Delete group");
      del.addEventListener("click", () => {
        const bar = del.parentElement;
        confirmInPlace(bar, `Delete “${chat.name ?? "this group"}” and all its messages?`, "Yes, delete", async (yes, restore) => {
          replace(this.alert);
          try {
            await busy(yes, "Deleting…", null, () => this.client.deleteGroup(this.chatId));
            location.hash = "#/chats";
          } catch (error) {
            replace(this.alert, error.message);
            restore();
          }
        });
      });
      buttons.push(del);
    }
    replace(this.dangerZone, buttons.length ? h("div", { class: "danger-bar" }, buttons) : null);
  }
}
