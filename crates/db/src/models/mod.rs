//! Row types and the queries that belong to them (`UserRow::find`, …).

mod attachments;
mod blocks;
mod chats;
mod friendships;
mod memberships;
mod messages;
mod reactions;
mod sessions;
mod users;

pub use attachments::{AttachmentRow, NewAttachment};
pub use blocks::BlockRow;
pub use chats::{ChatChanges, ChatListEntry, ChatRow, NewChat};
pub use friendships::FriendshipRow;
pub use memberships::{MemberEntry, MembershipRow};
pub use messages::{
    HistoryRange, MessageEntry, MessageRow, NewMessage, SearchScope, mention_text,
    store_batch_statement,
};
pub use reactions::{ReactionOutcome, ReactionRow};
pub use sessions::{NewSession, SessionRow};
pub use users::{NewUser, UserChanges, UserRow};

diesel::define_sql_function! {
    /// SQL `lower()`, present in both PostgreSQL and SQLite.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}
