//! What the real-time layer asks: which chats a socket follows, may it follow this
//! one, and "someone is typing".

use chat_db::models::MembershipRow;
use chat_domain::permissions;
use chat_selectors::users::user_profile;

use crate::auth::Principal;
use crate::chats::{access, denied};
use crate::events::{ChatEvent, publish_chat};
use crate::{AppContext, ServiceError};

/// Every chat the user belongs to with its current `last_seq` (a `/ws` socket follows
/// all of them; the seq is where in-order delivery starts).
pub async fn my_chat_positions(
    ctx: &AppContext,
    user_id: i64,
) -> Result<Vec<(i64, i64)>, ServiceError> {
    Ok(MembershipRow::chat_positions_of(&ctx.store.db, user_id).await?)
}

/// May the caller hold a socket on this chat? Members only (404 if no such chat).
/// Returns the chat's current `last_seq`.
pub async fn authorize_socket(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: i64,
) -> Result<i64, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::post_in_chat(access.actor).map_err(denied)?;
    Ok(chat_db::models::ChatRow::find(&ctx.store.db, chat_id)
        .await?
        .map_or(0, |c| c.last_seq))
}

/// Broadcasts `chat.typing` (members only; nothing is stored).
pub async fn typing(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: i64,
) -> Result<(), ServiceError> {
    authorize_socket(ctx, principal, chat_id).await?;
    let username = user_profile(&ctx.store, principal.user_id)
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
