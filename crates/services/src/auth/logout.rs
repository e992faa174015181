//! Ending sessions.

use chat_db::models::SessionRow;
use chat_domain::UserId;
use chat_selectors::sessions::invalidate_session;

use crate::auth::Principal;
use crate::events::{UserEvent, publish_user};
use crate::{AppContext, ServiceError};

/// Bus topic of a user's own events (presence, notifications, session ends).
pub fn user_topic(user_id: UserId) -> String {
    format!("user.{user_id}")
}

/// Revokes one session: in the database, then in the cache (every instance refuses
/// its tokens from now on), then tells the WebSocket layer to close its sockets.
pub(crate) async fn revoke_session(
    ctx: &AppContext,
    user_id: UserId,
    session_id: &str,
) -> Result<(), ServiceError> {
    SessionRow::revoke(&ctx.store.db, session_id, chat_db::now()).await?;
    invalidate_session(&ctx.store, session_id).await;
    let event = UserEvent::SessionRevoked {
        user_id,
        session_id: session_id.to_owned(),
    };
    publish_user(ctx, user_id, &event).await;
    Ok(())
}

/// Ends the caller's session: its access token stops working at once.
pub async fn logout(ctx: &AppContext, principal: &Principal) -> Result<(), ServiceError> {
    revoke_session(ctx, principal.user_id, &principal.session_id).await?;
    tracing::info!(user.id = principal.user_id.0, "logged out");
    Ok(())
}

/// Ends every session of a user except `keep` (password change keeps the caller's
/// own; deactivation keeps none). Returns how many were ended.
pub async fn revoke_user_sessions(
    ctx: &AppContext,
    user_id: UserId,
    keep: Option<&str>,
) -> Result<usize, ServiceError> {
    let revoked =
        SessionRow::revoke_all_for_user(&ctx.store.db, user_id.0, keep, chat_db::now()).await?;
    for session_id in &revoked {
        invalidate_session(&ctx.store, session_id).await;
        let event = UserEvent::SessionRevoked {
            user_id,
            session_id: session_id.clone(),
        };
        publish_user(ctx, user_id, &event).await;
    }
    Ok(revoked.len())
}
