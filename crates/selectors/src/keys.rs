//! Cache key builders: one place decides every key's shape.
//!
//! A chat's keys carry its id as a Redis Cluster hash tag (`{7}`): the entries of one
//! chat that a send or a history page reads together live in one slot, so one node
//! answers that part of the read (a user's or a session's entries live in theirs).

/// Prefixes of keys the in-process cache must never evict for room: a session's entry
/// (its revocation marker, or the rights last written through) and single-use tickets.
/// Losing one of those is a wrong answer, not a miss.
pub const PINNED_PREFIXES: &[&str] = &["session:", "ws_ticket:"];

/// The cached state of one login session.
pub fn session(session_id: &str) -> String {
    format!("session:{session_id}")
}

/// A user's role in a chat (or "none").
pub fn membership(chat_id: i64, user_id: i64) -> String {
    format!("member:{{{chat_id}}}:{user_id}")
}

/// A chat's header (kind, visibility, name), or "none".
pub fn chat(chat_id: i64) -> String {
    format!("chat:{{{chat_id}}}")
}

/// A single-use WebSocket ticket.
pub fn ws_ticket(ticket: &str) -> String {
    format!("ws_ticket:{ticket}")
}

/// A user's public profile, or "none".
pub fn user(user_id: i64) -> String {
    format!("user:{user_id}")
}

/// A random token replaced whenever a stored message of the chat changes (edit,
/// deletion): history kept in a process's memory is valid only under the current one.
pub fn history_epoch(chat_id: i64) -> String {
    format!("history_epoch:{{{chat_id}}}")
}

/// A chat's newest seq, written by the message writer before it answers the senders.
pub fn history_last(chat_id: i64) -> String {
    format!("history_last:{{{chat_id}}}")
}
