//! Presence: is a user connected anywhere? A counter of the user's sockets over every
//! instance (in Redis when configured) changes on each connect and disconnect; only
//! the first connect and the last disconnect are announced, as **one** event on the
//! user's own topic ([`PresenceChange`]) naming their chats and friends — so a connect
//! costs one bus message however many chats the user is in.
//!
//! An instance that dies without closing its sockets leaves the counter high until it
//! expires ([`PRESENCE_TTL`] after the user's last connect or disconnect).

use std::time::Duration;

use chat_db::models::{FriendshipRow, MembershipRow, UserRow};
use chat_selectors::keys;

use crate::events::{PresenceChange, user_topic};
use crate::users::utc;
use crate::{AppContext, ServiceError};

/// How long a presence counter outlives its last change.
pub const PRESENCE_TTL: Duration = Duration::from_secs(24 * 3600);

async fn announce(
    ctx: &AppContext,
    user_id: i64,
    online: bool,
    last_seen: Option<chrono::NaiveDateTime>,
) -> Result<(), ServiceError> {
    let chats = MembershipRow::chat_ids_of(&ctx.store.db, user_id).await?;
    let friends = FriendshipRow::of_user(
        &ctx.store.db,
        user_id,
        "accepted",
        crate::friends::MAX_LISTED,
    )
    .await?
    .iter()
    .map(|friendship| friendship.other(user_id))
    .collect();
    let change = PresenceChange {
        user_id,
        online,
        last_seen_at: last_seen.map(utc),
        chats,
        friends,
    };
    let payload = change
        .to_payload()
        .map_err(|e| ServiceError::Internal(e.into()))?;
    ctx.bus.publish(&user_topic(user_id), payload).await;
    Ok(())
}

/// A socket of `user_id` opened. Announces "online" if it is the user's first.
pub async fn connected(ctx: &AppContext, user_id: i64) -> Result<(), ServiceError> {
    let sockets = ctx
        .store
        .cache
        .incr(&keys::presence(user_id), 1, PRESENCE_TTL)
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    if sockets == 1 {
        announce(ctx, user_id, true, None).await?;
    }
    Ok(())
}

/// A socket of `user_id` closed. Announces "offline" (and records `last_seen_at`) if
/// it was the user's last.
pub async fn disconnected(ctx: &AppContext, user_id: i64) -> Result<(), ServiceError> {
    let key = keys::presence(user_id);
    let sockets = ctx
        .store
        .cache
        .incr(&key, -1, PRESENCE_TTL)
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    if sockets <= 0 {
        if sockets < 0 {
            // A counter that expired or was lost meanwhile: start again from zero.
            let _ = ctx.store.cache.incr(&key, -sockets, PRESENCE_TTL).await;
        }
        let now = chat_db::now();
        UserRow::touch(&ctx.store.db, user_id, now).await?;
        announce(ctx, user_id, false, Some(now)).await?;
    }
    Ok(())
}
