//! Pure domain types of the chat server.
//!
//! Everything here is plain data and rules: parsed value types (`Username::parse`, …),
//! newtype ids and the field-error collection used for validation answers. No I/O, no
//! async runtime, no database or web types, so the rules can be unit-tested in isolation.

pub mod attachment;
pub mod chat;
pub mod ids;
pub mod permissions;
pub mod reaction;
pub mod user;
pub mod validation;

pub use chat::{
    ChatKind, ChatName, ClientId, Description, MessageBody, Role, Visibility, mentioned_names,
};
pub use ids::{ChatId, MessageId, Seq, UserId};
pub use reaction::Emoji;
pub use user::{DisplayName, Email, Password, Username};
pub use validation::FieldErrors;
