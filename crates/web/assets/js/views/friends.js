// Friends: search the directory, send, accept and decline requests, open direct chats.

import { h, replace } from "../dom.js";
import { presenceDot } from "./chatlist.js";
import { busy, field, formError, values } from "./forms.js";

function person(user) {
  return h(
    "span",
    { class: "person" },
    h("span", { class: "person-name" }, user.display_name || user.username),
    " ",
    h("span", { class: "person-handle" }, `@${user.username}`),
  );
}

export class FriendsPanel {
  #offs = [];

  constructor(client) {
    this.client = client;
    this.alert = formError();
    this.searchForm = h(
      "form",
      { class: "search-form", role: "search", id: "user-search-form" },
      field("Find people by name", { name: "q", type: "search", id: "user-search", autocomplete: "off" }),
      h("button", { type: "submit" }, "Search"),
      formError(),
    );
    this.results = h("ul", { class: "people search-results", id: "user-results", "aria-label": "People found" });
    this.incoming = h("ul", { class: "people", id: "incoming-requests", "aria-label": "Requests to you" });
    this.outgoing = h("ul", { class: "people", id: "outgoing-requests", "aria-label": "Requests you sent" });
    this.friendList = h("ul", { class: "people", id: "friend-list", "aria-label": "Your friends" });
    this.blockedList = h("ul", { class: "people", id: "blocked-list", "aria-label": "People you block" });
    this.el = h(
      "section",
      { class: "panel friends-panel", "aria-labelledby": "friends-title" },
      h("h2", { id: "friends-title" }, "Friends"),
      this.searchForm,
      this.results,
      this.alert,
      h("h3", {}, "Requests to you"),
      this.incoming,
      h("h3", {}, "Requests you sent"),
      this.outgoing,
      h("h3", {}, "Your friends"),
      this.friendList,
      h("h3", {}, "People you block"),
      this.blockedList,
    );
    const onSearch = (event) => {
      event.preventDefault();
      this.search(values(this.searchForm).q.trim());
    };
    this.searchForm.addEventListener("submit", onSearch);
    const onNotification = (event) => {
      if (event.detail.kind === "friend_request" || event.detail.kind === "friend_accepted") this.refresh();
    };
    client.addEventListener("notification", onNotification);
    const onChange = (event) => {
      if (event.detail.kind === "presence") this.refresh({ quiet: true });
    };
    client.store.addEventListener("change", onChange);
    this.#offs.push(
      () => client.removeEventListener("notification", onNotification),
      () => client.store.removeEventListener("change", onChange),
    );
    this.refresh();
  }

  destroy() {
    for (const off of this.#offs) off();
  }

  async search(q) {
    const button = this.searchForm.querySelector("button[type=submit]");
    const page = await busy(button, "Searching…", this.searchForm, () => this.client.searchUsers(q));
    if (!page) return;
    const me = this.client.store.me?.id;
    const others = page.items.filter((u) => u.id !== me);
    replace(
      this.results,
      others.length
        ? others.map((user) =>
            h(
              "li",
              { dataset: { userId: user.id } },
              person(user),
              h("button", { type: "button", class: "secondary", on: { click: (e) => this.#ask(e.currentTarget, user) } }, "Add friend"),
              this.#blockButton(user),
            ),
          )
        : h("li", { class: "empty" }, q ? `Nobody matches “${q}”.` : "Type a name to search."),
    );
  }

  async #ask(button, user) {
    await this.#act(button, "Sending…", async () => {
      const request = await this.client.askFriend(user.id);
      replace(button, request.status === "accepted" ? "Friends now" : "Request sent");
      button.disabled = true;
      await this.refresh();
    });
  }

  /** A button that blocks `user` (their requests, direct chats and messages to me stop). */
  #blockButton(user) {
    return h(
      "button",
      {
        type: "button",
        class: "link danger",
        dataset: { control: "block" },
        "aria-label": `Block ${user.username}`,
        on: { click: (e) => this.#act(e.currentTarget, "Blocking…", async () => { await this.client.blockUser(user.id); await this.refresh(); }) },
      },
      "Block",
    );
  }

  /** Runs a button's action; its error goes to the panel's alert line. */
  async #act(button, text, action) {
    replace(this.alert);
    try {
      await busy(button, text, null, action);
    } catch (error) {
      replace(this.alert, error.message);
    }
  }

  /** Redraws requests and friends (`quiet`: presence only, so no new requests). */
  async refresh({ quiet = false } = {}) {
    if (quiet && this.friends) return this.#drawFriends(this.friends);
    try {
      const [requests, friends, blocks] = await Promise.all([
        this.client.friendRequests(),
        this.client.friends(),
        this.client.blocks(),
      ]);
      this.friends = friends.items;
      this.#drawRequests(requests);
      this.#drawFriends(friends.items);
      this.#drawBlocks(blocks.items);
    } catch (error) {
      replace(this.alert, error.message);
    }
  }

  #drawRequests({ incoming, outgoing }) {
    replace(
      this.incoming,
      incoming.length
        ? incoming.map((request) =>
            h(
              "li",
              { dataset: { requestId: request.id } },
              person(request.from_user),
              h("button", { type: "button", class: "primary", on: { click: (e) => this.#act(e.currentTarget, "Accepting…", async () => { await this.client.acceptRequest(request.id); await this.refresh(); }) } }, "Accept"),
              h("button", { type: "button", class: "secondary", on: { click: (e) => this.#act(e.currentTarget, "Declining…", async () => { await this.client.declineRequest(request.id); await this.refresh(); }) } }, "Decline"),
            ),
          )
        : h("li", { class: "empty" }, "No requests."),
    );
    replace(
      this.outgoing,
      outgoing.length
        ? outgoing.map((request) => h("li", { dataset: { requestId: request.id } }, person(request.to_user), h("span", { class: "muted" }, "waiting")))
        : h("li", { class: "empty" }, "None pending."),
    );
  }

  #drawFriends(friends) {
    const store = this.client.store;
    replace(
      this.friendList,
      friends.length
        ? friends.map(({ user }) =>
            h(
              "li",
              { dataset: { userId: user.id } },
              presenceDot(store, user.id),
              person(user),
              h("button", { type: "button", class: "primary", on: { click: (e) => this.#act(e.currentTarget, "Opening…", async () => { location.hash = `#/chats/${await this.client.directChat(user.id)}`; }) } }, "Message"),
              h("button", { type: "button", class: "link danger", "aria-label": `Remove ${user.username} from friends`, on: { click: (e) => this.#act(e.currentTarget, "Removing…", async () => { await this.client.removeFriend(user.id); await this.refresh(); }) } }, "Remove"),
              this.#blockButton(user),
            ),
          )
        : h("li", { class: "empty" }, "No friends yet: search for people above."),
    );
  }

  #drawBlocks(blocked) {
    replace(
      this.blockedList,
      blocked.length
        ? blocked.map(({ user }) =>
            h(
              "li",
              { dataset: { userId: user.id } },
              person(user),
              h("button", { type: "button", class: "secondary", dataset: { control: "unblock" }, "aria-label": `Unblock ${user.username}`, on: { click: (e) => this.#act(e.currentTarget, "Unblocking…", async () => { await this.client.unblockUser(user.id); await this.refresh(); }) } }, "Unblock"),
            ),
          )
        : h("li", { class: "empty" }, "Nobody."),
    );
  }
}
