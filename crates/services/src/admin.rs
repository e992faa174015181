//! Site administration: every user and chat, activation and admin rights.

use chat_db::models::{ChatRow, SessionRow, UserChanges, UserRow};
use chat_domain::UserId;
use chat_selectors::sessions::{LiveSession, invalidate_session, put_session};
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

/// How many times [`write_through`] re-reads a user whose row or sessions keep changing
/// under it before leaving the rest to the cache entries' expiry.
const WRITE_THROUGH_PASSES: usize = 3;

/// Activates/deactivates an account or grants/withdraws admin rights. Deactivation
/// ends every session of the user at once; an admin-rights change overwrites the
/// cached state of the user's sessions. Admins cannot lock themselves out, and cannot
/// change their own rights at all: a session whose admin flag is stale must not be able
/// to re-grant what was just withdrawn.
pub async fn update_user(
    ctx: &AppContext,
    principal: &Principal,
    user_id: UserId,
    is_active: Option<bool>,
    is_admin: Option<bool>,
) -> Result<UserView, ServiceError> {
    require_admin(principal)?;
    if user_id == principal.user_id && (is_active == Some(false) || is_admin.is_some()) {
        return Err(ServiceError::forbidden(
            "cannot_change_self",
            "you cannot change your own admin rights or deactivate yourself",
        ));
    }
    let before = UserRow::find(&ctx.store.db, user_id.0)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("user {user_id} not found")))?;
    let changes = UserChanges {
        is_active,
        is_admin,
        ..UserChanges::default()
    };
    let user = UserRow::update(&ctx.store.db, user_id.0, changes)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("user {user_id} not found")))?;
    if before.is_active && !user.is_active {
        put_user_profile(&ctx.store, &UserProfile::from(&user)).await;
        let ended = revoke_user_sessions(ctx, user_id, None).await?;
        tracing::info!(
            user.id = user_id.0,
            by = principal.user_id.0,
            sessions_ended = ended,
            "account deactivated"
        );
        return Ok(user.into());
    }
    write_through(ctx, user.clone()).await?;
    if before.is_admin != user.is_admin {
        // Open sockets hold the old flag: they are closed and reconnect with the new one.
        crate::events::publish_user(
            ctx,
            user_id,
            &crate::events::UserEvent::PermissionsChanged { user_id },
        )
        .await;
        tracing::info!(
            user.id = user_id.0,
            by = principal.user_id.0,
            is_admin = user.is_admin,
            "admin rights changed"
        );
    }
    Ok(user.into())
}

/// Overwrites the cached profile and session states of `user` (as just read from the
/// database) — the cache rule for writes: overwrite, never delete, so a request that
/// read the old row before the change cannot fill it back in. Then reads the database
/// again: another admin's change or a logout that landed between that read and the
/// cache writes is written too, so the cache ends holding what the database holds.
async fn write_through(ctx: &AppContext, mut user: UserRow) -> Result<(), ServiceError> {
    let mut sessions =
        SessionRow::live_ids_for_user(&ctx.store.db, user.id, chat_db::now()).await?;
    for _ in 0..WRITE_THROUGH_PASSES {
        put_user_profile(&ctx.store, &UserProfile::from(&user)).await;
        let state = LiveSession {
            user_id: user.id,
            is_admin: user.is_admin,
        };
        for session_id in &sessions {
            if user.is_active {
                put_session(&ctx.store, session_id, &state).await;
            } else {
                invalidate_session(&ctx.store, session_id).await;
            }
        }
        let now_user = UserRow::find(&ctx.store.db, user.id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("user {} not found", user.id)))?;
        let now_sessions =
            SessionRow::live_ids_for_user(&ctx.store.db, user.id, chat_db::now()).await?;
        // A session ended while we wrote "live" over its revoked marker: mark it again.
        for ended in sessions.iter().filter(|s| !now_sessions.contains(s)) {
            invalidate_session(&ctx.store, ended).await;
        }
        if (now_user.is_admin, now_user.is_active) == (user.is_admin, user.is_active) {
            return Ok(());
        }
        user = now_user;
        sessions = now_sessions;
    }
    tracing::warn!(
        user.id = user.id,
        "the account kept changing while its cached sessions were rewritten; they expire within a minute"
    );
    Ok(())
}

/// Every chat, by id; with `query`, the groups whose name contains it.
pub async fn list_chats(
    ctx: &AppContext,
    principal: &Principal,
    query: Option<&str>,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<ChatView>, ServiceError> {
    require_admin(principal)?;
    let limit = pagination::limit(limit)?;
    let query = pagination::search_text("q", query, 100)?;
    let after = cursor.map(pagination::decode_id_cursor).transpose()?;
    let rows = ChatRow::list(&ctx.store.db, false, query, after, limit + 1).await?;
    Ok(pagination::page(
        rows,
        limit,
        |c| c.id.to_string(),
        |c| ChatView::new(c, None, None, None),
    ))
}
