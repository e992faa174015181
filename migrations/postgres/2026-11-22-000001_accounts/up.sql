-- Accounts and login sessions. Times are UTC `TIMESTAMP` (no zone) so the same
-- `chrono::NaiveDateTime` columns serve PostgreSQL and SQLite.
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT      NOT NULL,
    username_key  TEXT      NOT NULL,   -- lower-cased username: uniqueness is case-insensitive
    email         TEXT      NOT NULL,   -- stored lower-cased
    display_name  TEXT      NOT NULL,
    password_hash TEXT      NOT NULL,
    is_admin      BOOLEAN   NOT NULL DEFAULT FALSE,
    is_active     BOOLEAN   NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMP NOT NULL,
    last_seen_at  TIMESTAMP NULL
);
CREATE UNIQUE INDEX users_username_key_uq ON users (username_key);
CREATE UNIQUE INDEX users_email_uq ON users (email);

-- One row per login. Access tokens name the session (`sid`), so revoking the row
-- revokes every token of the session at once. Refresh tokens are
-- `sid.generation.mac` with mac = HMAC(server key, sid.generation.refresh_nonce):
-- only the current generation may be exchanged; a genuine older one is a replay.
CREATE TABLE sessions (
    id           TEXT      PRIMARY KEY,
    user_id      BIGINT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_nonce TEXT      NOT NULL,
    refresh_gen   BIGINT    NOT NULL DEFAULT 0,
    created_at   TIMESTAMP NOT NULL,
    refreshed_at TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
