// The REST API under /api/v1: JSON in and out, errors as RFC 9457 problem details.

/** An API failure, from a problem document (or a network failure: status 0). */
export class ApiError extends Error {
  constructor({ status, code, detail, title, errors, retryAfter }) {
    // What to tell a person: every field error when there are some, else the detail.
    const fields = Object.entries(errors || {});
    super(
      fields.length
        ? fields.map(([field, problems]) => `${field}: ${[].concat(problems).join(", ")}`).join("; ")
        : detail || title || `request failed (${status})`,
    );
    this.status = status;
    this.code = code || "unknown";
    this.detail = detail || title || "";
    /** Field errors of a 422: `{field: [message, …]}`. */
    this.errors = errors || {};
    /** Seconds to wait before retrying (429, 503), when the server said. */
    this.retryAfter = retryAfter;
  }

  static network(cause) {
    const error = new ApiError({
      status: 0,
      code: "network",
      detail: "Cannot reach the server. Check your connection; retrying will work once it is back.",
    });
    error.cause = cause;
    return error;
  }

  /** Worth retrying unchanged: the server was unreachable, stopping, busy or rate limiting. */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status === 502 ||
      this.status === 503 || this.status === 504;
  }
}

async function body(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text };
  }
}

/**
 * One request, no session logic: `token` (optional) goes in `Authorization`.
 * Resolves with the JSON body (null for 204), or a Blob of the body when `blob` is
 * true; rejects with an ApiError. A FormData `body` goes as multipart/form-data (the
 * browser writes its Content-Type, with the boundary); anything else as JSON.
 */
export async function call(method, path, { body: payload, token, blob = false } = {}) {
  const form = payload instanceof FormData;
  const headers = { Accept: blob ? "*/*" : "application/json" };
  if (payload !== undefined && !form) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: payload === undefined || form ? payload : JSON.stringify(payload),
      cache: "no-store",
      credentials: "omit",
    });
    if (blob && response.ok) return await response.blob();
  } catch (cause) {
    throw ApiError.network(cause);
  }
  const data = await body(response).catch(() => null);
  if (response.ok) return data;
  const retryAfter = Number(response.headers.get("Retry-After")) || undefined;
  throw new ApiError({ status: response.status, retryAfter, ...(data || {}) });
}

// Answers that mean the session is over: log in again.
const SESSION_OVER = new Set([
  "session_revoked",
  "refresh_token_reused",
  "invalid_token",
  "missing_token",
  "account_disabled",
]);

/** The API as the logged-in user: adds the access token, refreshes it once on expiry. */
export class Api {
  constructor(session) {
    this.session = session;
  }

  async request(method, path, payload, blob = false) {
    for (let attempt = 0; ; attempt++) {
      const token = await this.session.accessToken();
      try {
        return await call(method, path, { body: payload, token, blob });
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 401 && error.status !== 403) throw error;
        if (error.code === "token_expired" && attempt === 0) {
          // Expired in flight (or the clock is off): rotate once and retry.
          await this.session.refresh();
          continue;
        }
        if (error.code === "token_expired" || SESSION_OVER.has(error.code)) {
          this.session.end(error.detail || "Your session ended. Please log in again.");
        }
        throw error;
      }
    }
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, payload = {}) {
    return this.request("POST", path, payload);
  }

  patch(path, payload) {
    return this.request("PATCH", path, payload);
  }

  put(path, payload = {}) {
    return this.request("PUT", path, payload);
  }

  delete(path) {
    return this.request("DELETE", path);
  }

  /** Posts a FormData as multipart/form-data (an upload). */
  upload(path, form) {
    return this.request("POST", path, form);
  }

  /** The bytes at `path`, as a Blob (a download). */
  blob(path) {
    return this.request("GET", path, undefined, true);
  }
}

/** `?a=1&b=x` from an object, skipping empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
