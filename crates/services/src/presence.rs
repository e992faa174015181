//! Presence: is a user connected anywhere? A counter of the user's sockets over every
//! instance ([`chat_db::presence`]) changes on each connect and disconnect; only the
//! first connect and the last disconnect are announced, as **one** event on the user's
//! own topic ([`PresenceChange`]) naming their chats and friends — so a connect costs
//! one bus message however many chats the user is in.
//!
//! An instance that dies without closing its sockets stops renewing its heartbeat; the
//! next live instance takes its sockets off the counters and announces the users left
//! with none as offline ([`start_heartbeat`]).

use chat_domain::ChatId;
use chat_domain::UserId;
use std::collections::HashMap;
use std::time::Duration;

use chat_db::models::{BlockRow, ChatRow, FriendshipRow, MembershipRow, UserRow};

use crate::events::{PresenceChange, presence_topic};
use crate::users::utc;
use crate::{AppContext, ServiceError};

/// Default of `CHAT_PRESENCE_HEARTBEAT`: how often an instance renews its presence
/// (it counts as dead three heartbeats after its last).
pub const HEARTBEAT: Duration = Duration::from_secs(10);

async fn announce(
    ctx: &AppContext,
    user_id: UserId,
    online: bool,
    last_seen: Option<chrono::NaiveDateTime>,
) -> Result<(), ServiceError> {
    let mut chats: Vec<ChatId> = MembershipRow::chat_ids_of(&ctx.store.db, user_id.0)
        .await?
        .into_iter()
        .map(ChatId)
        .collect();
    // A direct chat with someone on the other side of a block does not carry presence.
    let keys: Vec<String> = BlockRow::partners_of(&ctx.store.db, user_id.0)
        .await?
        .into_iter()
        .map(|partner| chat_domain::chat::direct_key(user_id.0, partner))
        .collect();
    let hidden = ChatRow::direct_ids(&ctx.store.db, keys).await?;
    chats.retain(|chat| !hidden.contains(&chat.0));
    let friends = FriendshipRow::of_user(
        &ctx.store.db,
        user_id.0,
        "accepted",
        crate::friends::MAX_LISTED,
    )
    .await?
    .iter()
    .map(|friendship| UserId(friendship.other(user_id.0)))
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
    ctx.bus.publish(&presence_topic(user_id), payload).await;
    Ok(())
}

/// Who of a list of users is online, read once for the whole list.
#[derive(Debug, Clone, Default)]
pub struct OnlineNow(Option<HashMap<i64, bool>>);

impl OnlineNow {
    /// Whether `user_id` has a socket open anywhere; `None` when presence could not be
    /// read (or the user was not asked about).
    pub fn of(&self, user_id: UserId) -> Option<bool> {
        self.0
            .as_ref()
            .and_then(|known| known.get(&user_id.0).copied())
    }
}

/// Reads the presence of `user_ids` in one round trip (Redis `MGET`; a lock in
/// embedded mode). A registry that cannot be read is logged and answers "unknown"
/// (`None` for everyone): a list of people is still worth serving without dots.
pub async fn online_now(ctx: &AppContext, user_ids: impl IntoIterator<Item = i64>) -> OnlineNow {
    let mut ids: Vec<i64> = user_ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return OnlineNow(Some(HashMap::new()));
    }
    match ctx.presence.online(&ids).await {
        Ok(online) => OnlineNow(Some(ids.into_iter().zip(online).collect())),
        Err(err) => {
            tracing::warn!(error = %err, "cannot read presence; lists show it unknown");
            OnlineNow(None)
        }
    }
}

/// A socket of `user_id` opened. Announces "online" if it is the user's first anywhere.
pub async fn connected(ctx: &AppContext, user_id: UserId) -> Result<(), ServiceError> {
    let sockets = ctx
        .presence
        .connected(user_id.0)
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    if sockets == 1 {
        announce(ctx, user_id, true, None).await?;
    }
    Ok(())
}

/// A socket of `user_id` closed. Announces "offline" (and records `last_seen_at`) if
/// it was the user's last.
pub async fn disconnected(ctx: &AppContext, user_id: UserId) -> Result<(), ServiceError> {
    let sockets = ctx
        .presence
        .disconnected(user_id.0)
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
    if sockets == 0 {
        went_offline(ctx, user_id).await?;
    }
    Ok(())
}

async fn went_offline(ctx: &AppContext, user_id: UserId) -> Result<(), ServiceError> {
    let now = chat_db::now();
    UserRow::touch(&ctx.store.db, user_id.0, now).await?;
    announce(ctx, user_id, false, Some(now)).await
}

/// Renews this instance's presence every `every` (correcting its own counts) and
/// announces the users whose presence that changed: "offline" for the users of
/// instances that stopped renewing theirs (killed without closing their sockets),
/// "online" for users whose sockets here had gone uncounted. Announcements run apart
/// from the renewal, so a long list never delays the next heartbeat. Runs until the
/// process ends; call inside a tokio runtime.
pub fn start_heartbeat(ctx: AppContext, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match ctx.presence.heartbeat().await {
                Ok(changed) if changed.online.is_empty() && changed.offline.is_empty() => {}
                Ok(changed) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move {
                        for user_id in changed.offline {
                            if let Err(err) = went_offline(&ctx, UserId(user_id)).await {
                                tracing::warn!(error = %err, "cannot announce a user offline");
                            }
                        }
                        for user_id in changed.online {
                            if let Err(err) = announce(&ctx, UserId(user_id), true, None).await {
                                tracing::warn!(error = %err, "cannot announce a user online");
                            }
                        }
                    });
                }
                Err(err) => tracing::warn!(error = %err, "cannot renew presence"),
            }
        }
    });
}
