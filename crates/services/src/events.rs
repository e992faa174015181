//! Domain events, published through the [`EventBus`](chat_db::bus::EventBus) after
//! the write they describe has committed.
//!
//! Chat events go to topic `chat.<id>` and have the exact shape of the WebSocket
//! events of SPEC §5 (`type: "chat.message"` with seed 002's `message` and `sender`
//! fields), so the WebSocket layer forwards the payload as is: one serialization per
//! event, whatever the number of sockets. Personal events go to `user.<id>`.

use chat_domain::{ChatId, MessageId, Seq, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::AppContext;

/// Topic of a user's presence changes (every instance hears it: the user's friends and
/// chat partners may be connected anywhere).
pub fn presence_topic(user_id: UserId) -> String {
    format!("presence.{user_id}")
}

/// Topic of a chat's events.
pub fn chat_topic(chat_id: ChatId) -> String {
    format!("chat.{chat_id}")
}

pub use crate::auth::user_topic;
pub use chat_db::bus::{BusMessage, EventBus, GAP_TOPIC};

/// Why a member is no longer in a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    /// They left.
    Left,
    /// An owner, admin or site admin removed them.
    Removed,
    /// The chat was deleted.
    ChatDeleted,
}

/// Every kind of event on the bus, as its `type` on the wire — the one list. Events are
/// serialized with it ([`ChatEvent::to_payload`], [`UserEvent::to_payload`]) and the
/// WebSocket hub routes by it (matching it exhaustively), so a kind cannot be renamed or
/// added on one side only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// [`ChatEvent::Message`].
    #[serde(rename = "chat.message")]
    Message,
    /// [`ChatEvent::MessageEdited`].
    #[serde(rename = "chat.message_edited")]
    MessageEdited,
    /// [`ChatEvent::MessageDeleted`].
    #[serde(rename = "chat.message_deleted")]
    MessageDeleted,
    /// [`ChatEvent::Read`].
    #[serde(rename = "chat.read")]
    Read,
    /// [`ChatEvent::Reaction`].
    #[serde(rename = "chat.reaction")]
    Reaction,
    /// [`ChatEvent::MemberJoined`].
    #[serde(rename = "chat.member_joined")]
    MemberJoined,
    /// [`ChatEvent::MemberLeft`].
    #[serde(rename = "chat.member_left")]
    MemberLeft,
    /// [`ChatEvent::RoleChanged`].
    #[serde(rename = "chat.member_role_changed")]
    RoleChanged,
    /// [`ChatEvent::Updated`].
    #[serde(rename = "chat.updated")]
    Updated,
    /// [`ChatEvent::Typing`].
    #[serde(rename = "chat.typing")]
    Typing,
    /// [`ChatEvent::Deleted`].
    #[serde(rename = "chat.deleted")]
    Deleted,
    /// [`UserEvent::Presence`].
    #[serde(rename = "presence")]
    Presence,
    /// [`UserEvent::Notification`].
    #[serde(rename = "notification")]
    Notification,
    /// [`UserEvent::SessionRevoked`].
    #[serde(rename = "session.revoked")]
    SessionRevoked,
    /// [`UserEvent::PermissionsChanged`].
    #[serde(rename = "user.permissions_changed")]
    PermissionsChanged,
    /// [`UserEvent::AccessChanged`] (between instances only; never sent to a client).
    #[serde(rename = "user.access_changed")]
    AccessChanged,
}

/// `{"type": <kind>, ...the body's fields}`: how every bus payload is written.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: EventKind,
    #[serde(flatten)]
    body: &'a T,
}

fn payload<T: Serialize>(kind: EventKind, body: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Envelope { kind, body })
}

/// An event on a chat's topic (its `type` is its [`EventKind`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChatEvent {
    /// A message was stored.
    Message {
        /// Chat.
        chat_id: ChatId,
        /// Message id.
        id: MessageId,
        /// Per-chat sequence number.
        seq: Seq,
        /// Text.
        message: String,
        /// Sender's username.
        sender: Option<String>,
        /// Sender's id.
        sender_id: Option<UserId>,
        /// Sender's idempotency key.
        client_id: Option<String>,
        /// Answered message.
        reply_to: Option<MessageId>,
        /// Time.
        created_at: DateTime<Utc>,
        /// Mentioned members (left out when none).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<UserId>,
        /// Attached files (left out when none).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<crate::attachments::AttachmentView>,
    },
    /// A message's text changed.
    MessageEdited {
        /// Chat.
        chat_id: ChatId,
        /// Message id.
        id: MessageId,
        /// Its seq.
        seq: Seq,
        /// New text.
        message: String,
        /// Edit time.
        edited_at: DateTime<Utc>,
    },
    /// A message was deleted (its text is gone).
    MessageDeleted {
        /// Chat.
        chat_id: ChatId,
        /// Message id.
        id: MessageId,
        /// Its seq.
        seq: Seq,
        /// Who deleted it.
        deleted_by: UserId,
        /// Deletion time.
        deleted_at: DateTime<Utc>,
    },
    /// A member added or took back a reaction.
    Reaction {
        /// Chat.
        chat_id: ChatId,
        /// The message.
        message_id: MessageId,
        /// Its seq.
        seq: Seq,
        /// Who reacted.
        user_id: UserId,
        /// The emoji.
        emoji: String,
        /// `true`: added; `false`: taken back.
        added: bool,
        /// Members reacting with this emoji now.
        count: i64,
    },
    /// A member's read marker moved.
    Read {
        /// Chat.
        chat_id: ChatId,
        /// Reader.
        user_id: UserId,
        /// Highest seq read.
        seq: Seq,
    },
    /// Someone joined or was added.
    MemberJoined {
        /// Chat.
        chat_id: ChatId,
        /// New member.
        user_id: UserId,
        /// Their username.
        username: String,
        /// Their role.
        role: chat_domain::Role,
        /// Who added them (`None`: they joined).
        added_by: Option<UserId>,
        /// The chat's newest seq when the membership began: the member's sockets get the
        /// messages after it (in-order delivery starts there, so a message that passes
        /// before an instance hears the chat shows as a gap and a `resync` hint).
        last_seq: Seq,
    },
    /// Someone left, was removed, or the chat was deleted.
    MemberLeft {
        /// Chat.
        chat_id: ChatId,
        /// Former member.
        user_id: UserId,
        /// Why.
        reason: LeftReason,
        /// Who removed them.
        removed_by: Option<UserId>,
    },
    /// A member's role changed.
    RoleChanged {
        /// Chat.
        chat_id: ChatId,
        /// Member.
        user_id: UserId,
        /// New role.
        role: chat_domain::Role,
    },
    /// A group's settings changed.
    Updated {
        /// Chat.
        chat_id: ChatId,
        /// Name.
        name: Option<String>,
        /// Description.
        description: Option<String>,
        /// Visibility.
        visibility: chat_domain::Visibility,
    },
    /// Someone is typing (not stored).
    Typing {
        /// Chat.
        chat_id: ChatId,
        /// Who types.
        user_id: UserId,
        /// Their username.
        username: String,
    },
    /// The chat is gone.
    Deleted {
        /// Chat.
        chat_id: ChatId,
        /// Who deleted it.
        deleted_by: UserId,
    },
}

/// A user came online or went offline: **one** event on the user's own topic, naming
/// the chats and friends it concerns, whatever their number. Each instance's hub
/// delivers it once to every local socket following one of those chats and to the
/// friends' `/ws` sockets (`chats` and `friends` are routing, not sent to clients).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceChange {
    /// Who.
    pub user_id: UserId,
    /// Connected now.
    pub online: bool,
    /// When last seen (set when going offline).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The user's chats.
    pub chats: Vec<ChatId>,
    /// The user's friends.
    pub friends: Vec<UserId>,
}

impl PresenceChange {
    /// The bus payload (`type: presence`, on `user.<id>`).
    pub fn to_payload(&self) -> Result<String, serde_json::Error> {
        payload(EventKind::Presence, self)
    }

    /// The `presence` event a client receives: `{type, user_id, online, last_seen_at}`,
    /// with the `chat_id` of a chat socket.
    pub fn client_event(&self, chat_id: Option<ChatId>) -> String {
        let mut event = serde_json::json!({
            "type": "presence",
            "user_id": self.user_id,
            "online": self.online,
            "last_seen_at": self.last_seen_at,
        });
        if let (Some(chat_id), Some(fields)) = (chat_id, event.as_object_mut()) {
            fields.insert("chat_id".to_owned(), chat_id.0.into());
        }
        event.to_string()
    }
}

/// What a personal notification is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notification {
    /// Someone asked to be friends.
    FriendRequest {
        /// Request id.
        request_id: i64,
        /// Who asked.
        from_user_id: UserId,
        /// Their username.
        from_username: String,
    },
    /// A request was accepted.
    FriendAccepted {
        /// Request id.
        request_id: i64,
        /// Who accepted.
        user_id: UserId,
        /// Their username.
        username: String,
    },
    /// The user was added to a chat by someone else (or a direct chat was opened with them).
    AddedToChat {
        /// Chat.
        chat_id: ChatId,
        /// Who added them.
        by_user_id: UserId,
    },
    /// The user was removed from a chat (or it was deleted).
    RemovedFromChat {
        /// Chat.
        chat_id: ChatId,
        /// Who removed them.
        by_user_id: UserId,
    },
    /// A message mentions the user (`@username`), in a chat they have not muted, from
    /// someone they do not block.
    Mention {
        /// Chat.
        chat_id: ChatId,
        /// The message.
        message_id: MessageId,
        /// Its seq.
        seq: Seq,
        /// Who wrote it.
        from_user_id: UserId,
        /// Their username.
        from_username: String,
        /// Its first 200 characters.
        excerpt: String,
    },
}

impl Notification {
    /// The user whose action this announces, where a block of them should silence it
    /// (a removal is a change of the recipient's access, announced whoever made it).
    fn sender(&self) -> Option<UserId> {
        match self {
            Notification::FriendRequest { from_user_id, .. } => Some(*from_user_id),
            Notification::FriendAccepted { user_id, .. } => Some(*user_id),
            Notification::AddedToChat { by_user_id, .. } => Some(*by_user_id),
            Notification::RemovedFromChat { .. } => None,
            Notification::Mention { from_user_id, .. } => Some(*from_user_id),
        }
    }
}

/// An event on a user's topic (its `type` is its [`EventKind`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum UserEvent {
    /// The user came online or went offline.
    Presence(PresenceChange),
    /// Something for the user's `/ws` sockets.
    Notification(Notification),
    /// A session ended (logout, password change, deactivation): its sockets close.
    SessionRevoked {
        /// Whose.
        user_id: UserId,
        /// Which.
        session_id: String,
    },
    /// The user's site-admin flag changed: their sockets close and reconnect.
    PermissionsChanged {
        /// Whose.
        user_id: UserId,
    },
    /// What the user may send changed without a membership changing (a block): their
    /// sockets check their next send in full instead of trusting an earlier check.
    AccessChanged {
        /// Whose.
        user_id: UserId,
    },
}

impl UserEvent {
    /// Its kind.
    pub fn kind(&self) -> EventKind {
        match self {
            UserEvent::Presence(_) => EventKind::Presence,
            UserEvent::Notification(_) => EventKind::Notification,
            UserEvent::SessionRevoked { .. } => EventKind::SessionRevoked,
            UserEvent::PermissionsChanged { .. } => EventKind::PermissionsChanged,
            UserEvent::AccessChanged { .. } => EventKind::AccessChanged,
        }
    }

    /// The bus payload.
    pub fn to_payload(&self) -> Result<String, serde_json::Error> {
        payload(self.kind(), self)
    }
}

/// Publishes a personal event on `user.<id>`.
pub async fn publish_user(ctx: &AppContext, user_id: UserId, event: &UserEvent) {
    match event.to_payload() {
        Ok(payload) => ctx.bus.publish(&user_topic(user_id), payload).await,
        Err(err) => tracing::error!(error = %err, "cannot serialize user event"),
    }
}

impl ChatEvent {
    /// Its kind.
    pub fn kind(&self) -> EventKind {
        match self {
            ChatEvent::Message { .. } => EventKind::Message,
            ChatEvent::MessageEdited { .. } => EventKind::MessageEdited,
            ChatEvent::MessageDeleted { .. } => EventKind::MessageDeleted,
            ChatEvent::Read { .. } => EventKind::Read,
            ChatEvent::Reaction { .. } => EventKind::Reaction,
            ChatEvent::MemberJoined { .. } => EventKind::MemberJoined,
            ChatEvent::MemberLeft { .. } => EventKind::MemberLeft,
            ChatEvent::RoleChanged { .. } => EventKind::RoleChanged,
            ChatEvent::Updated { .. } => EventKind::Updated,
            ChatEvent::Typing { .. } => EventKind::Typing,
            ChatEvent::Deleted { .. } => EventKind::Deleted,
        }
    }

    /// The bus payload: exactly the WebSocket event clients receive.
    pub fn to_payload(&self) -> Result<String, serde_json::Error> {
        payload(self.kind(), self)
    }

    /// The `chat.message` event of a stored message.
    pub fn stored(row: &chat_db::models::MessageRow, sender: Option<String>) -> Self {
        ChatEvent::Message {
            chat_id: ChatId(row.chat_id),
            id: MessageId(row.id),
            seq: Seq(row.seq),
            message: row.content.clone(),
            sender,
            sender_id: row.sender_id.map(UserId),
            client_id: row.client_id.clone(),
            reply_to: row.reply_to.map(MessageId),
            created_at: crate::users::utc(row.created_at),
            mentions: row.mention_ids().into_iter().map(UserId).collect(),
            attachments: crate::chats::attachments_of(row),
        }
    }
}

/// Publishes a chat event on `chat.<id>`.
pub async fn publish_chat(ctx: &AppContext, chat_id: ChatId, event: &ChatEvent) {
    match event.to_payload() {
        Ok(payload) => ctx.bus.publish(&chat_topic(chat_id), payload).await,
        Err(err) => tracing::error!(error = %err, "cannot serialize chat event"),
    }
}

/// Announces memberships: each `chat.member_joined` of `joins` on the topic of each of
/// `members` — the instances holding a member's sockets may not hear the chat's topic
/// yet (they subscribe only to what their sockets follow), and this is how they learn
/// to — and, with `to_chat`, on the chat's topic for everyone already following it.
/// One broker round trip. A chat being created has no follower yet: its joins go to its
/// members only.
pub async fn publish_joined(
    ctx: &AppContext,
    chat_id: ChatId,
    members: &[UserId],
    joins: &[ChatEvent],
    to_chat: bool,
) {
    let mut events = Vec::new();
    for join in joins {
        let payload = match join.to_payload() {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(error = %err, "cannot serialize a membership event");
                continue;
            }
        };
        for member in members {
            events.push((user_topic(*member), payload.clone()));
        }
        if to_chat {
            events.push((chat_topic(chat_id), payload));
        }
    }
    ctx.bus.publish_many(events).await;
}

/// Announces that memberships ended (`event`: a `chat.member_left`, or the
/// `chat.deleted` of the chat): on the chat's topic, then on each member's own topic, in
/// one broker round trip. The member's topic reaches an instance that learned of the
/// membership on it and may not hear the chat's topic yet; where both arrive, the chat's
/// comes first and the member's only confirms it.
pub async fn publish_left(
    ctx: &AppContext,
    chat_id: ChatId,
    members: &[UserId],
    event: &ChatEvent,
) {
    match event.to_payload() {
        Ok(payload) => {
            let mut events = vec![(chat_topic(chat_id), payload.clone())];
            events.extend(members.iter().map(|m| (user_topic(*m), payload.clone())));
            ctx.bus.publish_many(events).await;
        }
        Err(err) => tracing::error!(error = %err, "cannot serialize a membership event"),
    }
}

/// Publishes a `notification` event on `user.<id>`, unless the user blocks the one it
/// comes from.
pub async fn notify(ctx: &AppContext, user_id: UserId, notification: &Notification) {
    if let Some(from) = notification.sender()
        && crate::users::blocks(ctx, user_id, from).await
    {
        return;
    }
    publish_user(ctx, user_id, &UserEvent::Notification(notification.clone())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_events_keep_the_seed_field_names() -> anyhow::Result<()> {
        let event = ChatEvent::Message {
            chat_id: ChatId(1),
            id: MessageId(2),
            seq: Seq(3),
            message: "hi".to_owned(),
            sender: Some("ann".to_owned()),
            sender_id: Some(UserId(4)),
            client_id: None,
            reply_to: None,
            created_at: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            mentions: Vec::new(),
            attachments: Vec::new(),
        };
        let json: serde_json::Value = serde_json::from_str(&event.to_payload()?)?;
        assert_eq!(json["type"], "chat.message");
        assert_eq!(json["message"], "hi");
        assert_eq!(json["sender"], "ann");
        assert_eq!(json["chat_id"], 1);
        let note: serde_json::Value = serde_json::from_str(
            &UserEvent::Notification(Notification::AddedToChat {
                chat_id: ChatId(5),
                by_user_id: UserId(6),
            })
            .to_payload()?,
        )?;
        assert_eq!(note["type"], "notification");
        assert_eq!(note["kind"], "added_to_chat");
        Ok(())
    }

    /// The wire names are the protocol's (docs/protocol.md): changing one is a breaking
    /// change for clients, never a refactoring.
    #[test]
    fn kinds_have_the_protocol_names() -> anyhow::Result<()> {
        let names = [
            (EventKind::Message, "chat.message"),
            (EventKind::MessageEdited, "chat.message_edited"),
            (EventKind::MessageDeleted, "chat.message_deleted"),
            (EventKind::Read, "chat.read"),
            (EventKind::MemberJoined, "chat.member_joined"),
            (EventKind::MemberLeft, "chat.member_left"),
            (EventKind::RoleChanged, "chat.member_role_changed"),
            (EventKind::Updated, "chat.updated"),
            (EventKind::Typing, "chat.typing"),
            (EventKind::Deleted, "chat.deleted"),
            (EventKind::Presence, "presence"),
            (EventKind::Notification, "notification"),
            (EventKind::SessionRevoked, "session.revoked"),
            (EventKind::PermissionsChanged, "user.permissions_changed"),
            (EventKind::AccessChanged, "user.access_changed"),
        ];
        for (kind, name) in names {
            assert_eq!(serde_json::to_value(kind)?, name);
        }
        Ok(())
    }

    /// Whatever a payload is built from, its `type` reads back as the kind it was
    /// written with (what the hub routes by).
    #[test]
    fn every_payload_reads_back_as_its_kind() -> anyhow::Result<()> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "type")]
            kind: EventKind,
        }
        let at = DateTime::from_timestamp(0, 0).unwrap_or_default();
        let chat_events = [
            ChatEvent::Typing {
                chat_id: ChatId(1),
                user_id: UserId(2),
                username: "ann".to_owned(),
            },
            ChatEvent::Deleted {
                chat_id: ChatId(1),
                deleted_by: UserId(2),
            },
        ];
        let user_events = [
            UserEvent::SessionRevoked {
                user_id: UserId(1),
                session_id: "s".to_owned(),
            },
            UserEvent::PermissionsChanged { user_id: UserId(1) },
            UserEvent::Presence(PresenceChange {
                user_id: UserId(1),
                online: false,
                last_seen_at: Some(at),
                chats: vec![ChatId(3)],
                friends: vec![],
            }),
        ];
        for event in &chat_events {
            let head: Head = serde_json::from_str(&event.to_payload()?)?;
            assert_eq!(head.kind, event.kind());
        }
        for event in &user_events {
            let payload = event.to_payload()?;
            let head: Head = serde_json::from_str(&payload)?;
            assert_eq!(head.kind, event.kind());
            assert!(payload.contains(r#""user_id":1"#), "{payload}");
        }
        Ok(())
    }
}
