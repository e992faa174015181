// Groups: create one, discover public ones and join them.

import { h, replace } from "../dom.js";
import { busy, checkbox, field, formError, values } from "./forms.js";

export class GroupsPanel {
  constructor(client) {
    this.client = client;
    this.createForm = h(
      "form",
      { class: "create-group", id: "create-group-form", "aria-labelledby": "create-group-title", novalidate: true },
      h("h3", { id: "create-group-title" }, "New group"),
      field("Name", { name: "name", id: "group-name", required: true, maxlength: 100 }),
      field("Description (optional)", { name: "description", id: "group-description", maxlength: 500 }),
      checkbox("Public: anyone can find and join it", { name: "public", id: "group-public" }),
      formError(),
      h("button", { type: "submit", class: "primary" }, "Create group"),
    );
    this.searchForm = h(
      "form",
      { class: "search-form", role: "search", id: "group-search-form" },
      field("Find public groups", { name: "q", type: "search", id: "group-search", autocomplete: "off" }),
      h("button", { type: "submit" }, "Search"),
      formError(),
    );
    this.results = h("ul", { class: "groups search-results", id: "group-results", "aria-label": "Public groups" });
    this.el = h(
      "section",
      { class: "panel groups-panel", "aria-labelledby": "groups-title" },
      h("h2", { id: "groups-title" }, "Groups"),
      this.createForm,
      h("h3", {}, "Discover"),
      this.searchForm,
      this.results,
    );
    this.createForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#create();
    });
    this.searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.search(values(this.searchForm).q.trim());
    });
    this.search("");
  }

  destroy() {}

  async #create() {
    const v = values(this.createForm);
    const fields = { name: v.name.trim(), visibility: v.public ? "public" : "private" };
    if (v.description.trim()) fields.description = v.description.trim();
    const button = this.createForm.querySelector("button[type=submit]");
    const chatId = await busy(button, "Creating…", this.createForm, () => this.client.createGroup(fields));
    if (chatId) {
      this.createForm.reset();
      location.hash = `#/chats/${chatId}`;
    }
  }

  async search(q) {
    const button = this.searchForm.querySelector("button[type=submit]");
    const page = await busy(button, "Searching…", this.searchForm, () => this.client.discoverGroups(q));
    if (!page) return;
    const mine = this.client.store.chats;
    replace(
      this.results,
      page.items.length
        ? page.items.map((group) => {
            const member = mine.has(group.id);
            const error = h("p", { class: "field-error", role: "alert" });
            const join = h(
              "button",
              {
                type: "button",
                class: member ? "secondary" : "primary",
                on: {
                  click: async (e) => {
                    if (member) {
                      location.hash = `#/chats/${group.id}`;
                      return;
                    }
                    try {
                      await busy(e.currentTarget, "Joining…", null, () => this.client.joinGroup(group.id));
                      location.hash = `#/chats/${group.id}`;
                    } catch (failure) {
                      replace(error, failure.message);
                    }
                  },
                },
              },
              member ? "Open" : "Join",
            );
            return h(
              "li",
              { dataset: { chatId: group.id } },
              h(
                "span",
                { class: "group-info" },
                h("span", { class: "group-name" }, group.name ?? `Group ${group.id}`),
                h("span", { class: "muted" }, ` · ${group.member_count} member${group.member_count === 1 ? "" : "s"}`),
                group.description ? h("span", { class: "group-description" }, group.description) : null,
              ),
              join,
              error,
            );
          })
        : h("li", { class: "empty" }, q ? `No public group matches “${q}”.` : "No public groups yet."),
    );
  }
}
