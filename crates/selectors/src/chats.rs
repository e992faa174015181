//! Chat headers and memberships: asked on every chat request (is the caller a member?
//! what kind of chat is it?), so they are cached.

use chat_db::DbError;
use chat_db::models::{ChatRow, MembershipRow};
use chat_domain::{ChatKind, Role, Visibility};
use serde::{Deserialize, Serialize};

use crate::cached::{put, read_through};
use crate::{Store, keys};

/// The stable part of a chat: what permission checks need. Counters (`last_seq`,
/// `member_count`) are not here; they change with every message and are read fresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatHeader {
    /// Id.
    pub id: i64,
    /// Direct or group.
    pub kind: ChatKind,
    /// Public or private.
    pub visibility: Visibility,
    /// Group name.
    pub name: Option<String>,
}

impl ChatHeader {
    /// The header of a stored chat (rows hold only valid names: the schema checks them).
    pub fn from_row(row: &ChatRow) -> Self {
        ChatHeader {
            id: row.id,
            kind: ChatKind::parse(&row.kind).unwrap_or(ChatKind::Group),
            visibility: Visibility::parse(&row.visibility).unwrap_or(Visibility::Private),
            name: row.name.clone(),
        }
    }
}

/// The chat's header, if it exists.
pub async fn chat_header(store: &Store, chat_id: i64) -> Result<Option<ChatHeader>, DbError> {
    read_through(store, &keys::chat(chat_id), async || {
        Ok(ChatRow::find(&store.db, chat_id)
            .await?
            .as_ref()
            .map(ChatHeader::from_row))
    })
    .await
}

/// Records a chat's new header (`None`: deleted).
pub async fn put_chat_header(store: &Store, chat_id: i64, header: Option<&ChatHeader>) {
    put(store, &keys::chat(chat_id), header).await;
}

/// The user's role in the chat, `None` when not a member.
pub async fn membership_role(
    store: &Store,
    chat_id: i64,
    user_id: i64,
) -> Result<Option<Role>, DbError> {
    read_through(store, &keys::membership(chat_id, user_id), async || {
        Ok(MembershipRow::find(&store.db, chat_id, user_id)
            .await?
            .and_then(|m| Role::parse(&m.role).ok()))
    })
    .await
}

/// Records a membership change (`None`: no longer a member).
pub async fn put_membership(store: &Store, chat_id: i64, user_id: i64, role: Option<Role>) {
    put(store, &keys::membership(chat_id, user_id), role.as_ref()).await;
}
