DROP TRIGGER messages_search_on_edit ON messages;
DROP TRIGGER messages_search_on_insert ON messages;
DROP FUNCTION messages_search_fallback();
ALTER TABLE messages DROP COLUMN search;
ALTER TABLE messages
    ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED;
CREATE INDEX messages_search_idx ON messages USING GIN (search);
