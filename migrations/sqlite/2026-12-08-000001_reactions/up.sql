-- Same schema as migrations/postgres, in SQLite's types.
-- One row per (message, member, emoji): a member reacts with an emoji at most once.
CREATE TABLE message_reactions (
    message_id BIGINT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    BIGINT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji      TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (message_id, user_id, emoji)
);
CREATE INDEX message_reactions_user_idx ON message_reactions (user_id);
