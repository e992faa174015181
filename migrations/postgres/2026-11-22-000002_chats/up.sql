-- Friends, chats, memberships and messages.

-- One row per unordered user pair (user_low < user_high): a pending request, an
-- accepted friendship or a declined request. The pair key makes "one relation per
-- pair" a constraint, so requests crossing in flight cannot create two.
CREATE TABLE friendships (
    id           BIGSERIAL PRIMARY KEY,
    user_low     BIGINT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_high    BIGINT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    requester_id BIGINT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status       TEXT      NOT NULL CHECK (status IN ('pending', 'accepted', 'declined')),
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    CHECK (user_low < user_high)
);
CREATE UNIQUE INDEX friendships_pair_uq ON friendships (user_low, user_high);
CREATE INDEX friendships_high_idx ON friendships (user_high);

CREATE TABLE chats (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT      NOT NULL CHECK (kind IN ('direct', 'group')),
    name            TEXT      NULL,
    description     TEXT      NULL,
    visibility      TEXT      NOT NULL CHECK (visibility IN ('public', 'private')),
    -- "low:high" user ids of a direct chat: at most one direct chat per pair.
    direct_key      TEXT      NULL,
    created_by      BIGINT    NULL REFERENCES users (id) ON DELETE SET NULL,
    created_at      TIMESTAMP NOT NULL,
    -- Highest message seq; bumped in the transaction that stores the message.
    last_seq        BIGINT    NOT NULL DEFAULT 0,
    -- Most recent activity (creation or last message): the chat list's order.
    last_activity_at TIMESTAMP NOT NULL,
    member_count    INTEGER   NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX chats_direct_key_uq ON chats (direct_key);
CREATE INDEX chats_public_idx ON chats (visibility, kind);

CREATE TABLE memberships (
    chat_id       BIGINT    NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id       BIGINT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role          TEXT      NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at     TIMESTAMP NOT NULL,
    last_read_seq BIGINT    NOT NULL DEFAULT 0,
    muted         BOOLEAN   NOT NULL DEFAULT FALSE,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE messages (
    id         BIGSERIAL PRIMARY KEY,
    chat_id    BIGINT    NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    sender_id  BIGINT    NULL REFERENCES users (id) ON DELETE SET NULL,
    seq        BIGINT    NOT NULL,
    content    TEXT      NOT NULL,
    client_id  TEXT      NULL,
    reply_to   BIGINT    NULL REFERENCES messages (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    edited_at  TIMESTAMP NULL,
    deleted_at TIMESTAMP NULL
);
CREATE UNIQUE INDEX messages_chat_seq_uq ON messages (chat_id, seq);
-- Idempotent sends: a client_id is unique per sender and chat (NULLs never clash).
CREATE UNIQUE INDEX messages_client_id_uq ON messages (chat_id, sender_id, client_id);
