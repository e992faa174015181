ALTER TABLE chats RESET (fillfactor);
