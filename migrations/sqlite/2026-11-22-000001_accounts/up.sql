-- Same schema as migrations/postgres, in SQLite's types. AUTOINCREMENT keeps ids of
-- deleted users from being reused.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT 0,
    is_active     BOOLEAN NOT NULL DEFAULT 1,
    created_at    TIMESTAMP NOT NULL,
    last_seen_at  TIMESTAMP NULL
);
CREATE UNIQUE INDEX users_username_key_uq ON users (username_key);
CREATE UNIQUE INDEX users_email_uq ON users (email);

CREATE TABLE sessions (
    id           TEXT    PRIMARY KEY NOT NULL,
    user_id      BIGINT  NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_nonce TEXT    NOT NULL,
    refresh_gen   BIGINT  NOT NULL DEFAULT 0,
    created_at   TIMESTAMP NOT NULL,
    refreshed_at TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
