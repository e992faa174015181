// The login session: who is logged in and their tokens.
//
// The access token lives in memory only (a variable of this module): nothing outside
// this page's JavaScript can read it, and it is gone with the page. The refresh token
// is kept in memory too and parked in sessionStorage only while the page unloads
// (pagehide), so a reload of this tab stays logged in; the new page takes it out again
// at once. sessionStorage is per tab and dies with it; a tab duplicated while the page
// is open does not inherit the token (the server ends the whole session when one
// refresh token is presented twice). See docs/web-client.md for the reasoning.

import { ApiError, call } from "./api.js";

const STORAGE_KEY = "chat.refresh_token";
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
  #rotating = null;

  constructor() {
    super();
    addEventListener("pagehide", () => this.#park());
    // Back from the back/forward cache: this page lives on, so it keeps the token.
    addEventListener("pageshow", (event) => {
      if (event.persisted) sessionStorage.removeItem(STORAGE_KEY);
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
    const token = sessionStorage.getItem(STORAGE_KEY);
    sessionStorage.removeItem(STORAGE_KEY);
    if (!token) return false;
    this.#refresh = token;
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

  /** A valid access token, rotating first if it is (nearly) expired. */
  async accessToken() {
    if (this.#rotating) await this.#rotating.catch(() => {});
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
    this.#timer = setTimeout(() => this.refresh().catch(() => {}), delay);
  }

  #park() {
    if (this.#refresh) sessionStorage.setItem(STORAGE_KEY, this.#refresh);
  }

  #clear() {
    clearTimeout(this.#timer);
    this.user = null;
    this.#access = null;
    this.#refresh = null;
    this.#expiresAt = 0;
    sessionStorage.removeItem(STORAGE_KEY);
  }
}
