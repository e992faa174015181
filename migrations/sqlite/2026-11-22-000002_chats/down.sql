DROP TABLE messages;
DROP TABLE memberships;
DROP TABLE chats;
DROP TABLE friendships;
