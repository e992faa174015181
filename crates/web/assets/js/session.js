// The login session: who is logged in and their tokens.
//
// The tokens live in memory (private fields of the Session): nothing outside this
// page's JavaScript can read them, and they are gone with the page. They are parked in
// sessionStorage only while the page unloads (pagehide), so a reload of this tab stays
// logged in; the new page takes them out again at once. sessionStorage is per tab and
// dies with it; a tab duplicated while the page is open does not inherit them (the
// server ends the whole session when one refresh token is presented twice). A reload
// whose parked access token still has a while to live uses it at once, so the page
// asks for its data without waiting for a refresh first. See docs/web-client.md.

import { ApiError, call } from "./api.js";

const STORAGE_KEY = "chat.session";
// What pages before this version parked: the refresh token alone.
const OLD_STORAGE_KEY = "chat.refresh_token";
// A parked access token is used again only if it lives at least this long still.
const RESUME_MIN_MS = 30_000;
// Rotate when this share of the access token's lifetime has passed…
const ROTATE_AT = 0.75;
// …but at least this long before it expires, and never sooner than this after getting it.
const ROTATE_MARGIN_MS = 60_000;
const ROTATE_MIN_MS = 5_000;
// After a failed rotation (server unreachable), try again this often.
const ROTATE_RETRY_MS = 10_000;
// An access token this close to its expiry is rotated before it is used.
const EXPIRY_SLACK_MS = 5_000;

export class Session extends EventTarget {
  /** The logged-in user (`UserView`), or null. */
  user = null;
  #access = null;
  #refresh = null;
  #expiresAt = 0;
  #timer = null;
  /** When the scheduled rotation is due (Date.now() scale). */
  #rotateAt = 0;
  #rotating = null;

  constructor() {
    super();
    addEventListener("pagehide", () => this.#park());
    // Back from the back/forward cache: this page lives on, so it keeps the token.
    addEventListener("pageshow", (event) => {
      if (event.persisted) this.#unpark();
    });
  }

  get loggedIn() {
    return this.user !== null;
  }

  /**
   * Resumes the session a reload of this tab left behind. Resolves true when logged in,
   * false when there is none (or it was ended); retries while the server is unreachable,
   * calling `waiting(error)` before each new try.
   */
  async restore(waiting = () => {}) {
    const parked = this.#unpark();
    if (!parked?.refresh) return false;
    this.#refresh = parked.refresh;
    const left = (parked.expiresAt ?? 0) - Date.now();
    if (parked.access && parked.user && left > RESUME_MIN_MS) {
      // Logged in at once with the page before's access token: the first requests go
      // out now (one round trip to a filled page), and rotation keeps its schedule.
      this.user = parked.user;
      this.#access = parked.access;
      this.#expiresAt = parked.expiresAt;
      this.#schedule(Math.max(0, Math.min((parked.rotateAt ?? 0) - Date.now(), left - ROTATE_MARGIN_MS)));
      this.dispatchEvent(new CustomEvent("login"));
      return true;
    }
    for (let delay = 1000; ; delay = Math.min(delay * 2, 10_000)) {
      try {
        await this.refresh();
        return true;
      } catch (error) {
        if (!(error instanceof ApiError) || !error.transient || !this.#refresh) return false;
        waiting(error);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  async login(username, password) {
    this.#adopt(await call("POST", "/auth/login", { body: { username, password } }));
  }

  async register(fields) {
    this.#adopt(await call("POST", "/auth/register", { body: fields }));
  }

  /** Ends the session on the server (best effort) and here. */
  async logout() {
    const token = this.#access;
    this.#clear();
    this.dispatchEvent(new CustomEvent("logout", { detail: { reason: null } }));
    if (token) await call("POST", "/auth/logout", { token }).catch(() => {});
  }

  /** The server says the session is over (revoked, expired, account deactivated). */
  end(reason) {
    if (!this.loggedIn) return;
    this.#clear();
    this.dispatchEvent(new CustomEvent("logout", { detail: { reason } }));
  }

  /**
   * A valid access token, rotating first if it is (nearly) expired. A rotation in
   * flight is not waited for while the current token is good: it stays valid until
   * it expires, whatever the rotation does.
   */
  async accessToken() {
    if (this.#access && Date.now() > this.#expiresAt - EXPIRY_SLACK_MS) {
      await this.refresh();
    }
    return this.#access;
  }

  /**
   * Rotates the token pair. Concurrent callers share one request: two refreshes with
   * one token count as reuse on the server, which would end the session.
   */
  refresh() {
    if (!this.#rotating) {
      const token = this.#refresh;
      this.#rotating = (async () => {
        if (!token) throw new ApiError({ status: 401, code: "missing_token", detail: "Please log in." });
        try {
          this.#adopt(await call("POST", "/auth/refresh", { body: { refresh_token: token } }));
        } catch (error) {
          if (error instanceof ApiError && !error.transient) {
            this.end(error.detail || "Your session ended. Please log in again.");
          } else {
            this.#schedule(ROTATE_RETRY_MS);
          }
          throw error;
        }
      })().finally(() => {
        this.#rotating = null;
      });
    }
    return this.#rotating;
  }

  #adopt(pair) {
    const wasLoggedIn = this.loggedIn;
    this.user = pair.user;
    this.#access = pair.access_token;
    this.#refresh = pair.refresh_token;
    const lifetime = pair.expires_in * 1000;
    this.#expiresAt = Date.now() + lifetime;
    this.#schedule(Math.max(ROTATE_MIN_MS, Math.min(lifetime * ROTATE_AT, lifetime - ROTATE_MARGIN_MS)));
    if (!wasLoggedIn) this.dispatchEvent(new CustomEvent("login"));
  }

  #schedule(delay) {
    clearTimeout(this.#timer);
    this.#rotateAt = Date.now() + delay;
    this.#timer = setTimeout(() => this.refresh().catch(() => {}), delay);
  }

  #park() {
    if (!this.#refresh) return;
    const parked = {
      refresh: this.#refresh,
      access: this.#access,
      expiresAt: this.#expiresAt,
      rotateAt: this.#rotateAt,
      user: this.user,
    };
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(parked));
  }

  /** Takes the parked tokens out of storage (they never stay there while a page runs). */
  #unpark() {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    const old = sessionStorage.getItem(OLD_STORAGE_KEY);
    sessionStorage.removeItem(STORAGE_KEY);
    sessionStorage.removeItem(OLD_STORAGE_KEY);
    try {
      if (raw) return JSON.parse(raw);
    } catch {
      // Not ours: ignore it.
    }
    return old ? { refresh: old } : null;
  }

  #clear() {
    clearTimeout(this.#timer);
    this.user = null;
    this.#access = null;
    this.#refresh = null;
    this.#expiresAt = 0;
    this.#unpark();
  }
}
