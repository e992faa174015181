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
