//! Accounts and sessions: sign-up, log-in, refresh rotation, log-out, and the
//! access-token check every authenticated request makes.

mod authenticate;
mod login;
mod logout;
pub mod passwords;
mod refresh;
mod register;
mod session;
mod ticket;
pub mod tokens;

pub(crate) use authenticate::session_ended;
pub use authenticate::{Principal, authenticate, current_principal};
pub use login::{LoginInput, login};
pub(crate) use logout::revoke_session;
pub use logout::{logout, revoke_user_sessions, user_topic};
pub use refresh::refresh;
pub use register::{RegisterInput, create_admin, register};
pub use session::TokenPair;
pub use ticket::{TICKET_TTL, WsTicket, issue_ws_ticket, redeem_ws_ticket};

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, the
/// token trimmed); `None` for another scheme or an empty token. HTTP routes and WebSocket
/// handshakes read credentials through this one parser.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_tokens_parse_one_way() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc  "), Some("abc"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Basic abc"), None);
    }
}
