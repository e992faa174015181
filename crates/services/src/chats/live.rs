//! What the real-time layer asks: which chats a socket follows, may it follow this
//! one, and "someone is typing".

use chat_db::models::MembershipRow;
use chat_domain::permissions;
use chat_domain::{ChatId, Seq, UserId};
use chat_selectors::users::user_profile;

use crate::auth::Principal;
use crate::chats::{access, denied};
use crate::events::{ChatEvent, publish_chat};
use crate::{AppContext, ServiceError};

/// A chat a socket follows and its newest seq when the socket started following it:
/// in-order delivery starts after that seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatPosition {
    /// The chat.
    pub chat_id: ChatId,
    /// Its newest seq then.
    pub last_seq: Seq,
}

/// Every chat the user belongs to with its current `last_seq` (a `/ws` socket follows
/// all of them).
pub async fn my_chat_positions(
    ctx: &AppContext,
    user_id: UserId,
) -> Result<Vec<ChatPosition>, ServiceError> {
    Ok(MembershipRow::chat_positions_of(&ctx.store.db, user_id.0)
        .await?
        .into_iter()
        .map(|(chat, seq)| ChatPosition {
            chat_id: ChatId(chat),
            last_seq: Seq(seq),
        })
        .collect())
}

/// May the caller hold a socket on this chat? Members only (404 if no such chat).
/// Returns the chat's current `last_seq`.
pub async fn authorize_socket(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
) -> Result<Seq, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::post_in_chat(access.actor).map_err(denied)?;
    Ok(Seq(chat_db::models::ChatRow::find(
        &ctx.store.db,
        chat_id.0,
    )
    .await?
    .map_or(0, |c| c.last_seq)))
}

/// Broadcasts `chat.typing` (members only; nothing is stored).
pub async fn typing(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
) -> Result<(), ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::post_in_chat(access.actor).map_err(denied)?;
    if access.header.blocked {
        return Err(crate::users::unreachable());
    }
    let username = user_profile(&ctx.store, principal.user_id.0)
        .await?
        .map(|u| u.username)
        .unwrap_or_default();
    publish_chat(
        ctx,
        chat_id,
        &ChatEvent::Typing {
            chat_id,
            user_id: principal.user_id,
            username,
        },
    )
    .await;
    Ok(())
}
