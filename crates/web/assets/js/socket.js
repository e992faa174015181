// The all-chats WebSocket (/ws): authenticated with a single-use ticket (never the
// access token in a URL), reconnected with exponential backoff and jitter, and watched
// with application pings so a dead connection (laptop asleep, network gone) is noticed.

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
// The server pings every 15 s; our own ping finds half-open connections it cannot.
const PING_EVERY_MS = 25_000;
const PONG_WITHIN_MS = 10_000;
// Close codes after which reconnecting is pointless (docs/protocol.md).
const SESSION_REVOKED = 4001;

/**
 * Events: `state` (detail: {state, retryAt}), `open`, `message` (detail: the parsed
 * event), `revoked` (the server ended the session).
 * States: idle → connecting → open → reconnecting → open …; stopped after stop().
 */
export class Connection extends EventTarget {
  state = "idle";
  retryAt = 0;
  #getTicket;
  #ws = null;
  #attempt = 0;
  #timer = null;
  #pingTimer = null;
  #pongTimer = null;
  #stopped = true;
  #requestIds = 0;

  // The network came back: no need to wait out the backoff.
  #onOnline = () => this.retryNow();

  /** `getTicket()` resolves with a ticket from `POST /api/v1/ws/ticket`. */
  constructor(getTicket) {
    super();
    this.#getTicket = getTicket;
  }

  start() {
    if (!this.#stopped) return;
    this.#stopped = false;
    addEventListener("online", this.#onOnline);
    this.#connect();
  }

  stop() {
    removeEventListener("online", this.#onOnline);
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#drop(1000);
    this.#setState("stopped");
  }

  /** Skips the rest of the backoff wait. */
  retryNow() {
    if (this.state !== "reconnecting" || this.#stopped || this.#ws) return;
    clearTimeout(this.#timer);
    this.#connect();
  }

  /** Sends an action when open; false when it could not be sent. */
  send(action) {
    if (this.#ws?.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(JSON.stringify(action));
    return true;
  }

  async #connect() {
    this.#setState(this.#attempt === 0 && this.state !== "reconnecting" ? "connecting" : "reconnecting");
    let ticket;
    try {
      ticket = await this.#getTicket();
    } catch {
      // Unreachable server, or a session that just ended (the session logs out then).
      if (!this.#stopped) this.#retryLater();
      return;
    }
    if (this.#stopped) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws?ticket=${encodeURIComponent(ticket)}`);
    this.#ws = ws;
    ws.addEventListener("open", () => {
      if (this.#ws !== ws) return;
      this.#attempt = 0;
      this.#setState("open");
      this.#keepAlive();
      this.dispatchEvent(new Event("open"));
    });
    ws.addEventListener("message", (event) => {
      if (this.#ws !== ws) return;
      clearTimeout(this.#pongTimer);
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      if (data.type !== "pong") this.dispatchEvent(new CustomEvent("message", { detail: data }));
    });
    ws.addEventListener("close", (event) => {
      if (this.#ws !== ws) return;
      this.#closed(event.code);
    });
  }

  #closed(code) {
    this.#ws = null;
    this.#stopKeepAlive();
    if (code === SESSION_REVOKED) {
      this.#stopped = true;
      this.#setState("stopped");
      this.dispatchEvent(new Event("revoked"));
    } else if (!this.#stopped) {
      this.#retryLater();
    }
  }

  #retryLater() {
    this.#attempt += 1;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (this.#attempt - 1));
    // "Equal jitter": half fixed, half random, so a restarted server is not met by
    // every client at the same instant.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.retryAt = Date.now() + delay;
    this.#setState("reconnecting");
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#connect(), delay);
  }

  #keepAlive() {
    this.#stopKeepAlive();
    this.#pingTimer = setInterval(() => {
      if (!this.send({ action: "ping", request_id: `ping-${++this.#requestIds}` })) return;
      clearTimeout(this.#pongTimer);
      // Any frame clears this; none within the window means the connection is dead.
      this.#pongTimer = setTimeout(() => this.#drop(4000), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  #stopKeepAlive() {
    clearInterval(this.#pingTimer);
    clearTimeout(this.#pongTimer);
  }

  /** Gives up on the current socket now, without waiting for a closing handshake. */
  #drop(code) {
    const ws = this.#ws;
    if (!ws) return;
    this.#closed(code === 1000 ? 1000 : 1006);
    try {
      ws.close(code === 1000 ? 1000 : 4000);
    } catch {
      // Already closing.
    }
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, retryAt: this.retryAt } }));
  }
}
