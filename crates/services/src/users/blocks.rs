//! Blocking: a user I block cannot send me friend requests, open a direct chat with me
//! or post in ours (nor can I, until I unblock them), and their notifications do not
//! reach me. They are told only that they cannot message me.

use chat_db::models::{BlockRow, ChatRow, FriendshipRow};
use chat_domain::UserId;
use chat_domain::chat::direct_key;
use chat_selectors::chats::{direct_header, put_chat_header};
use chat_selectors::users::user_profile;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::events::{UserEvent, publish_user};
use crate::users::{PublicUser, utc};
use crate::{AppContext, ServiceError};

/// Most blocks listed (the list is not paginated).
pub const MAX_BLOCKS_LISTED: i64 = 1000;

/// Whether I block a user, after a block or unblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct BlockState {
    /// The user.
    #[schema(value_type = i64)]
    pub user_id: UserId,
    /// Whether I block them now.
    pub blocked: bool,
}

/// A user I block.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct BlockedUser {
    /// The user.
    pub user: PublicUser,
    /// Blocked since.
    pub blocked_at: DateTime<Utc>,
}

/// The refusal a block causes, the same for both sides: it says no more than that.
pub(crate) fn unreachable() -> ServiceError {
    ServiceError::forbidden("user_unreachable", "cannot message this user")
}

/// Refuses with [`unreachable`] when either user blocks the other.
pub(crate) async fn ensure_reachable(
    ctx: &AppContext,
    a: UserId,
    b: UserId,
) -> Result<(), ServiceError> {
    if BlockRow::between(&ctx.store.db, a.0, b.0).await? {
        Err(unreachable())
    } else {
        Ok(())
    }
}

/// Whether `user` blocks `other` (a notification from `other` is then not sent).
pub(crate) async fn blocks(ctx: &AppContext, user: UserId, other: UserId) -> bool {
    match BlockRow::exists(&ctx.store.db, user.0, other.0).await {
        Ok(found) => found,
        Err(err) => {
            // Unknown: deliver (a notification is not a permission).
            tracing::warn!(error = %err, "cannot read blocks; notifying");
            false
        }
    }
}

/// Blocks `user_id` (idempotent). Any friend request or friendship between us ends, and
/// our direct chat, if there is one, takes no more messages from either side.
pub async fn block_user(
    ctx: &AppContext,
    principal: &Principal,
    user_id: UserId,
) -> Result<BlockState, ServiceError> {
    if user_id == principal.user_id {
        return Err(ServiceError::invalid(
            "user_id",
            "you cannot block yourself",
        ));
    }
    user_profile(&ctx.store, user_id.0)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("user {user_id} not found")))?;
    BlockRow::insert(
        &ctx.store.db,
        principal.user_id.0,
        user_id.0,
        chat_db::now(),
    )
    .await?;
    FriendshipRow::delete_pair(&ctx.store.db, principal.user_id.0, user_id.0).await?;
    direct_chat_changed(ctx, principal.user_id, user_id).await?;
    Ok(BlockState {
        user_id,
        blocked: true,
    })
}

/// Lifts my block of `user_id` (idempotent). Their own block of me, if any, stands.
pub async fn unblock_user(
    ctx: &AppContext,
    principal: &Principal,
    user_id: UserId,
) -> Result<BlockState, ServiceError> {
    if BlockRow::delete(&ctx.store.db, principal.user_id.0, user_id.0).await? {
        direct_chat_changed(ctx, principal.user_id, user_id).await?;
    }
    Ok(BlockState {
        user_id,
        blocked: false,
    })
}

/// The users I block, most recent first.
pub async fn list_blocks(
    ctx: &AppContext,
    principal: &Principal,
) -> Result<Vec<BlockedUser>, ServiceError> {
    let rows = BlockRow::of_blocker(&ctx.store.db, principal.user_id.0, MAX_BLOCKS_LISTED).await?;
    let users =
        crate::friends::users_by_id(ctx, rows.iter().map(|r| r.blocked_id).collect()).await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            Some(BlockedUser {
                user: users.get(&row.blocked_id).cloned()?.into(),
                blocked_at: utc(row.created_at),
            })
        })
        .collect())
}

/// A block between `a` and `b` began or ended: their direct chat's cached header takes
/// the new state, and both users' sockets check their next send in full (a socket
/// trusts an earlier check of a chat for a while; see `chat-ws`'s send grant).
async fn direct_chat_changed(ctx: &AppContext, a: UserId, b: UserId) -> Result<(), ServiceError> {
    let Some(chat) = ChatRow::find_direct(&ctx.store.db, &direct_key(a.0, b.0)).await? else {
        return Ok(());
    };
    let header = direct_header(&ctx.store, &chat).await?;
    put_chat_header(&ctx.store, chat.id, Some(&header)).await;
    for user_id in [a, b] {
        publish_user(ctx, user_id, &UserEvent::AccessChanged { user_id }).await;
    }
    Ok(())
}
