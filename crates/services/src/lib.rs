//! Business logic of the chat server.
//!
//! Every operation follows one shape: authorize → validate → write (in a
//! transaction where it spans rows) → invalidate caches → publish events. HTTP
//! handlers and WebSocket actions both call these functions; there is one
//! implementation of each operation.

pub mod admin;
pub mod attachments;
pub mod auth;
pub mod chats;
pub mod client;
mod context;
mod error;
pub mod events;
pub mod friends;
pub mod history_cache;
pub mod lifecycle;
pub mod messages;
pub mod metrics;
pub mod pagination;
pub mod presence;
pub mod rate_limit;
pub mod reactions;
pub mod search;
pub mod users;
pub mod writer;

pub use context::{AppContext, AuthSettings, ChatSettings, TestHook};
pub use error::{ClientError, ServiceError, ServiceResult};
