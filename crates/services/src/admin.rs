//! Site administration: every user and chat, activation and admin rights.

use chat_db::models::{ChatRow, SessionRow, UserChanges, UserRow};
use chat_selectors::sessions::refresh_session;
use chat_selectors::users::{UserProfile, put_user_profile};

use crate::auth::{Principal, revoke_user_sessions};
use crate::chats::ChatView;
use crate::pagination::{self, Page};
use crate::users::UserView;
use crate::{AppContext, ServiceError};

fn require_admin(principal: &Principal) -> Result<(), ServiceError> {
    if principal.is_admin {
        Ok(())
    } else {
        Err(ServiceError::forbidden(
            "admin_only",
            "this needs a site administrator",
        ))
    }
}

/// Every account (active or not), by id.
pub async fn list_users(
    ctx: &AppContext,
    principal: &Principal,
    query: Option<&str>,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<UserView>, ServiceError> {
    require_admin(principal)?;
    let limit = pagination::limit(limit)?;
    let query = pagination::search_text("q", query, 254)?;
    let after = cursor.map(pagination::decode_id_cursor).transpose()?;
    let rows = UserRow::list_all(&ctx.store.db, query, after, limit + 1).await?;
    Ok(pagination::page(
        rows,
        limit,
        |u| u.id.to_string(),
        UserView::from,
    ))
}

/// Activates/deactivates an account or grants/withdraws admin rights. Deactivation
/// ends every session of the user at once. Admins cannot lock themselves out.
pub async fn update_user(
    ctx: &AppContext,
    principal: &Principal,
    user_id: i64,
    is_active: Option<bool>,
    is_admin: Option<bool>,
) -> Result<UserView, ServiceError> {
    require_admin(principal)?;
    if user_id == principal.user_id && (is_active == Some(false) || is_admin == Some(false)) {
        return Err(ServiceError::forbidden(
            "cannot_change_self",
            "you cannot deactivate yourself or drop your own admin rights",
        ));
    }
    let before = UserRow::find(&ctx.store.db, user_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("user {user_id} not found")))?;
    let changes = UserChanges {
        is_active,
        is_admin,
        ..UserChanges::default()
    };
    let user = UserRow::update(&ctx.store.db, user_id, changes)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("user {user_id} not found")))?;
    put_user_profile(&ctx.store, &UserProfile::from(&user)).await;
    if before.is_active && !user.is_active {
        let ended = revoke_user_sessions(ctx, user_id, None).await?;
        tracing::info!(
            user.id = user_id,
            by = principal.user_id,
            sessions_ended = ended,
            "account deactivated"
        );
    } else if before.is_admin != user.is_admin {
        // Cached sessions carry the admin flag: make them re-read it; open sockets hold
        // the old flag, so they are closed and reconnect with the new one.
        for session_id in
            SessionRow::live_ids_for_user(&ctx.store.db, user_id, chat_db::now()).await?
        {
            refresh_session(&ctx.store, &session_id).await;
        }
        let event = serde_json::json!({"type": "user.permissions_changed", "user_id": user_id});
        ctx.bus
            .publish(&crate::events::user_topic(user_id), event.to_string())
            .await;
        tracing::info!(
            user.id = user_id,
            by = principal.user_id,
            is_admin = user.is_admin,
            "admin rights changed"
        );
    }
    Ok(user.into())
}

/// Every chat, by id.
pub async fn list_chats(
    ctx: &AppContext,
    principal: &Principal,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<ChatView>, ServiceError> {
    require_admin(principal)?;
    let limit = pagination::limit(limit)?;
    let after = cursor.map(pagination::decode_id_cursor).transpose()?;
    let rows = ChatRow::list(&ctx.store.db, false, None, after, limit + 1).await?;
    Ok(pagination::page(
        rows,
        limit,
        |c| c.id.to_string(),
        |c| ChatView::new(c, None, None, None),
    ))
}
