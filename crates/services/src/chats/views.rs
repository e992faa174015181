//! What clients see of chats, members and messages.

use chat_db::models::{ChatRow, MemberEntry, MembershipRow, MessageEntry, MessageRow};
use chat_domain::UserId;
use chat_domain::{ChatId, MessageId, Seq};
use chat_domain::{ChatKind, Role, Visibility};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppContext;
use crate::attachments::AttachmentView;
use crate::presence::{OnlineNow, online_now};
use crate::reactions::ReactionView;
use crate::users::utc;

/// Chats with at most this many members list them inline; bigger ones give only
/// `member_count` (use `GET /chats/{id}/members`).
pub const MEMBER_PREVIEW_MAX: i32 = 20;

/// A message.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MessageView {
    /// Id.
    #[schema(value_type = i64)]
    pub id: MessageId,
    /// Chat.
    #[schema(value_type = i64)]
    pub chat_id: ChatId,
    /// Per-chat sequence number: gapless, strictly increasing.
    #[schema(value_type = i64)]
    pub seq: Seq,
    /// Author's id (`null` once the account is gone).
    #[schema(value_type = Option<i64>)]
    pub sender_id: Option<UserId>,
    /// Author's username.
    pub sender: Option<String>,
    /// Text; empty once deleted.
    pub content: String,
    /// The sender's idempotency key.
    pub client_id: Option<String>,
    /// The message this one answers.
    pub reply_to: Option<i64>,
    /// Sent.
    pub created_at: DateTime<Utc>,
    /// Last edit.
    pub edited_at: Option<DateTime<Utc>>,
    /// Deletion time (the text is blanked).
    pub deleted_at: Option<DateTime<Utc>>,
    /// Files it carries (download each from its `url`).
    pub attachments: Vec<AttachmentView>,
    /// Members the text mentions (`@username`), resolved when it was sent.
    #[schema(value_type = Vec<i64>)]
    pub mentions: Vec<UserId>,
    /// Reactions: each emoji once, in the order first used, with how many members chose
    /// it and whether the caller did. Kept last: cached pages are written up to it.
    pub reactions: Vec<ReactionView>,
}

impl MessageView {
    /// From a row and its sender's username.
    pub fn new(row: MessageRow, sender: Option<String>) -> Self {
        MessageView {
            mentions: row.mention_ids().into_iter().map(UserId).collect(),
            attachments: attachments_of(&row),
            reactions: Vec::new(),
            id: MessageId(row.id),
            chat_id: ChatId(row.chat_id),
            seq: Seq(row.seq),
            sender_id: row.sender_id.map(UserId),
            sender,
            content: row.content,
            client_id: row.client_id,
            reply_to: row.reply_to,
            created_at: utc(row.created_at),
            edited_at: row.edited_at.map(utc),
            deleted_at: row.deleted_at.map(utc),
        }
    }
}

/// The attachments a stored message carries, as rendered when it was sent.
pub fn attachments_of(row: &MessageRow) -> Vec<AttachmentView> {
    match row.attachments.as_deref() {
        None => Vec::new(),
        Some(json) => serde_json::from_str(json).unwrap_or_else(|err| {
            tracing::error!(error = %err, message = row.id, "unreadable attachments");
            Vec::new()
        }),
    }
}

impl From<MessageEntry> for MessageView {
    fn from(entry: MessageEntry) -> Self {
        MessageView::new(entry.message, entry.sender)
    }
}

/// A chat member.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MemberView {
    /// User id.
    #[schema(value_type = i64)]
    pub user_id: UserId,
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Role in the chat: `owner`, `admin` or `member`.
    #[schema(value_type = String, example = "member")]
    pub role: Role,
    /// Join time.
    pub joined_at: DateTime<Utc>,
    /// Highest seq this member has read (what "seen" markers are drawn from).
    pub last_read_seq: i64,
    /// Whether the member has a socket open now (on any instance); `null` when
    /// presence cannot be read at the moment. Changes arrive as `presence` events.
    pub online: Option<bool>,
    /// Last activity: a log-in, a token refresh or the close of the member's last
    /// socket (`null` if none was recorded).
    pub last_seen_at: Option<DateTime<Utc>>,
}

impl MemberView {
    /// From a membership with its account, and the presence read for the page.
    pub fn new(entry: MemberEntry, online: &OnlineNow) -> Self {
        MemberView {
            user_id: UserId(entry.user.id),
            online: online.of(UserId(entry.user.id)),
            last_seen_at: entry.user.last_seen_at.map(utc),
            username: entry.user.username,
            display_name: entry.user.display_name,
            role: Role::parse(&entry.membership.role).unwrap_or(Role::Member),
            joined_at: utc(entry.membership.joined_at),
            last_read_seq: entry.membership.last_read_seq,
        }
    }

    /// Leaves out the member's presence (`online`, `last_seen_at`): the other side of a
    /// direct chat under a block, which carries no presence either way.
    pub fn hide_presence(&mut self) {
        self.online = None;
        self.last_seen_at = None;
    }

    /// Views of `entries`, with their presence read in one round trip.
    pub async fn many(ctx: &AppContext, entries: Vec<MemberEntry>) -> Vec<Self> {
        let online = online_now(ctx, entries.iter().map(|e| e.user.id)).await;
        entries
            .into_iter()
            .map(|entry| MemberView::new(entry, &online))
            .collect()
    }
}

/// A chat as its member (or a moderating site admin) sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChatView {
    /// Id.
    #[schema(value_type = i64)]
    pub id: ChatId,
    /// `direct` or `group`.
    #[schema(value_type = String, example = "group")]
    pub kind: ChatKind,
    /// Group name (`null` for direct chats).
    pub name: Option<String>,
    /// Group description.
    pub description: Option<String>,
    /// `public` or `private` (direct chats are private).
    #[schema(value_type = String, example = "private")]
    pub visibility: Visibility,
    /// Creator.
    pub created_by: Option<i64>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Most recent activity (creation or last message).
    pub last_activity_at: DateTime<Utc>,
    /// Highest message seq.
    pub last_seq: i64,
    /// Number of members.
    pub member_count: i32,
    /// The caller's role (`null` when not a member).
    #[schema(value_type = Option<String>, example = "owner")]
    pub role: Option<Role>,
    /// Highest seq the caller has read.
    pub last_read_seq: Option<i64>,
    /// Messages after the caller's read marker: `last_seq - last_read_seq`.
    pub unread_count: Option<i64>,
    /// Messages after the caller's read marker that mention them (`null` when not a
    /// member).
    pub unread_mentions: Option<i64>,
    /// Whether the caller muted this chat (`null` when not a member): clients do not
    /// notify for a muted chat.
    pub muted: Option<bool>,
    /// The newest message.
    pub last_message: Option<MessageView>,
    /// The members, for chats of at most 20 (see `member_count` otherwise).
    pub members: Option<Vec<MemberView>>,
    /// Where to open this chat's WebSocket.
    pub ws_url: String,
}

impl ChatView {
    /// Assembles the view.
    pub fn new(
        chat: ChatRow,
        membership: Option<&MembershipRow>,
        last_message: Option<MessageView>,
        members: Option<Vec<MemberView>>,
    ) -> Self {
        ChatView {
            id: ChatId(chat.id),
            kind: ChatKind::parse(&chat.kind).unwrap_or(ChatKind::Group),
            visibility: Visibility::parse(&chat.visibility).unwrap_or(Visibility::Private),
            name: chat.name,
            description: chat.description,
            created_by: chat.created_by,
            created_at: utc(chat.created_at),
            last_activity_at: utc(chat.last_activity_at),
            last_seq: chat.last_seq,
            member_count: chat.member_count,
            role: membership.and_then(|m| Role::parse(&m.role).ok()),
            last_read_seq: membership.map(|m| m.last_read_seq),
            unread_count: membership.map(|m| (chat.last_seq - m.last_read_seq).max(0)),
            // Counted by the caller that has the mention rows (list, full view).
            unread_mentions: membership.map(|_| 0),
            muted: membership.map(|m| m.muted),
            last_message,
            members,
            ws_url: format!("/ws/chats/{}", chat.id),
        }
    }
}

/// A public group in the discovery list.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct GroupListing {
    /// Id.
    #[schema(value_type = i64)]
    pub id: ChatId,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Visibility (always `public` in discovery).
    #[schema(value_type = String, example = "public")]
    pub visibility: Visibility,
    /// Number of members.
    pub member_count: i32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<ChatRow> for GroupListing {
    fn from(chat: ChatRow) -> Self {
        GroupListing {
            id: ChatId(chat.id),
            visibility: Visibility::parse(&chat.visibility).unwrap_or(Visibility::Private),
            name: chat.name,
            description: chat.description,
            member_count: chat.member_count,
            created_at: utc(chat.created_at),
        }
    }
}
