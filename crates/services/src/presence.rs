//! Presence: is a user connected anywhere? A counter of the user's sockets over every
//! instance (in Redis when configured) changes on each connect and disconnect; only
//! the first connect and the last disconnect are announced — to each of the user's
//! chats (`presence` on `chat.<id>`) and to each friend (`presence` on `user.<id>`).
//!
//! An instance that dies without closing its sockets leaves the counter high until it
//! expires ([`PRESENCE_TTL`] after the user's last connect or disconnect).

use std::time::Duration;

use chat_db::models::{FriendshipRow, MembershipRow, UserRow};
use chat_selectors::keys;
use serde::Serialize;

use crate::events::{ChatEvent, publish_chat, user_topic};
use crate::users::utc;
use crate::{AppContext, ServiceError};

/// How long a presence counter outlives its last change.
pub const PRESENCE_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Serialize)]
struct PersonalPresence {
    #[serde(rename = "type")]
    kind: &'static str,
    user_id: i64,
    online: bool,
    last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn announce(
    ctx: &AppContext,
    user_id: i64,
    online: bool,
    last_seen: Option<chrono::NaiveDateTime>,
) -> Result<(), ServiceError> {
    let last_seen_at = last_seen.map(utc);
    for chat_id in MembershipRow::chat_ids_of(&ctx.store.db, user_id).await? {
        publish_chat(
            ctx,
            chat_id,
            &ChatEvent::Presence {
                chat_id,
                user_id,
                online,
                last_seen_at,
            },
        )
        .await;
    }
    let personal = serde_json::to_string(&PersonalPresence {
        kind: "presence",
        user_id,
        online,
        last_seen_at,
    })
    .map_err(|e| ServiceError::Internal(e.into()))?;
    for friendship in FriendshipRow::of_user(
        &ctx.store.db,
        user_id,
        "accepted",
        crate::friends::MAX_LISTED,
    )
    .await?
    {
        ctx.bus
            .publish(&user_topic(friendship.other(user_id)), personal.clone())
            .await;
    }
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
