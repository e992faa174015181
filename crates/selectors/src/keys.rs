//! Cache key builders: one place decides every key's shape.

/// The cached state of one login session.
pub fn session(session_id: &str) -> String {
    format!("session:{session_id}")
}
