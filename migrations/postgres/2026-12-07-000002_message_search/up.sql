-- Full-text search over message text: a generated tsvector (the `simple` configuration:
-- words as written, lower-cased, no stemming — chats mix languages) and a GIN index.
-- Edits and deletions (which blank the text) recompute it with the row.
ALTER TABLE messages
    ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED;
CREATE INDEX messages_search_idx ON messages USING GIN (search);
