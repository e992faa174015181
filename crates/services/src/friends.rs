//! Friends: requests, acceptance, refusal, removal. One relation per user pair; a
//! request to someone who already asked you accepts theirs.

use chat_domain::UserId;
use std::collections::HashMap;

use chat_db::DbError;
use chat_db::models::{FriendshipRow, UserRow};
use chat_selectors::users::user_profile;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::events::{Notification, notify};
use crate::presence::online_now;
use crate::users::{PublicUser, utc};
use crate::{AppContext, ServiceError, rate_limit};

/// Most friends or requests listed (the lists are not paginated).
pub const MAX_LISTED: i64 = 1000;

/// How long the sender of a declined request waits before asking the same user again
/// (the user who declined may ask any time): no decline, ask, notify loop.
pub const DECLINED_COOLDOWN: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// A friend request (or the friendship it became).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FriendRequestView {
    /// Request id.
    pub id: i64,
    /// Who asked.
    pub from_user: PublicUser,
    /// Who was asked.
    pub to_user: PublicUser,
    /// `pending`, `accepted` or `declined`.
    pub status: String,
    /// First asked.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A friend.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FriendView {
    /// The friend.
    pub user: PublicUser,
    /// Friends since.
    pub since: DateTime<Utc>,
    /// Whether the friend has a socket open now (on any instance); `null` when
    /// presence cannot be read at the moment. Changes arrive as `presence` events.
    pub online: Option<bool>,
    /// Last activity: a log-in, a token refresh or the close of the friend's last
    /// socket (`null` if none was recorded).
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Pending requests, both ways.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FriendRequests {
    /// Addressed to me.
    pub incoming: Vec<FriendRequestView>,
    /// Sent by me.
    pub outgoing: Vec<FriendRequestView>,
}

pub(crate) async fn users_by_id(
    ctx: &AppContext,
    ids: Vec<i64>,
) -> Result<HashMap<i64, UserRow>, ServiceError> {
    Ok(UserRow::find_many(&ctx.store.db, &ids)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect())
}

fn view(row: &FriendshipRow, users: &HashMap<i64, UserRow>) -> Option<FriendRequestView> {
    let to = row.other(row.requester_id);
    Some(FriendRequestView {
        id: row.id,
        from_user: users.get(&row.requester_id).cloned()?.into(),
        to_user: users.get(&to).cloned()?.into(),
        status: row.status.clone(),
        created_at: utc(row.created_at),
        updated_at: utc(row.updated_at),
    })
}

async fn one_view(
    ctx: &AppContext,
    row: &FriendshipRow,
) -> Result<FriendRequestView, ServiceError> {
    let users = users_by_id(ctx, vec![row.user_low, row.user_high]).await?;
    view(row, &users).ok_or_else(|| ServiceError::NotFound("user not found".to_owned()))
}

/// My friends, most recent first, with their presence (read once for the list).
pub async fn list_friends(
    ctx: &AppContext,
    principal: &Principal,
) -> Result<Vec<FriendView>, ServiceError> {
    let rows =
        FriendshipRow::of_user(&ctx.store.db, principal.user_id.0, "accepted", MAX_LISTED).await?;
    let users = users_by_id(
        ctx,
        rows.iter().map(|r| r.other(principal.user_id.0)).collect(),
    )
    .await?;
    let online = online_now(ctx, users.values().filter(|u| u.is_active).map(|u| u.id)).await;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let user = users
                .get(&r.other(principal.user_id.0))
                .filter(|u| u.is_active)?;
            Some(FriendView {
                online: online.of(UserId(user.id)),
                last_seen_at: user.last_seen_at.map(utc),
                user: user.clone().into(),
                since: utc(r.updated_at),
            })
        })
        .collect())
}

/// My pending requests, incoming and outgoing.
pub async fn list_requests(
    ctx: &AppContext,
    principal: &Principal,
) -> Result<FriendRequests, ServiceError> {
    let rows =
        FriendshipRow::of_user(&ctx.store.db, principal.user_id.0, "pending", MAX_LISTED).await?;
    let users = users_by_id(
        ctx,
        rows.iter()
            .map(|r| r.other(principal.user_id.0))
            .chain([principal.user_id.0])
            .collect(),
    )
    .await?;
    let (outgoing, incoming): (Vec<_>, Vec<_>) = rows
        .iter()
        .partition(|r| r.requester_id == principal.user_id.0);
    Ok(FriendRequests {
        incoming: incoming
            .into_iter()
            .filter_map(|r| view(r, &users))
            .collect(),
        outgoing: outgoing
            .into_iter()
            .filter_map(|r| view(r, &users))
            .collect(),
    })
}

async fn accept_row(
    ctx: &AppContext,
    principal: &Principal,
    row: &FriendshipRow,
) -> Result<FriendRequestView, ServiceError> {
    let accepted = FriendshipRow::transition(
        &ctx.store.db,
        row.id,
        "pending",
        "accepted",
        row.requester_id,
        chat_db::now(),
    )
    .await?
    .ok_or_else(|| ServiceError::Conflict {
        code: "request_changed",
        detail: "the request changed meanwhile; reload it".to_owned(),
    })?;
    let me = user_profile(&ctx.store, principal.user_id.0)
        .await?
        .map(|u| u.username)
        .unwrap_or_default();
    notify(
        ctx,
        UserId(row.requester_id),
        &Notification::FriendAccepted {
            request_id: row.id,
            user_id: principal.user_id,
            username: me,
        },
    )
    .await;
    one_view(ctx, &accepted).await
}

/// Asks `user_id` to be friends. If they already asked me, this accepts their
/// request. Returns the request and whether a new one was created (only then is the
/// other user notified: asking again while a request is pending changes nothing).
/// After they declined, the same sender may ask again only after [`DECLINED_COOLDOWN`].
pub async fn send_request(
    ctx: &AppContext,
    principal: &Principal,
    user_id: UserId,
) -> Result<(FriendRequestView, bool), ServiceError> {
    if user_id == principal.user_id {
        return Err(ServiceError::invalid(
            "user_id",
            "you cannot befriend yourself",
        ));
    }
    // Each request may notify someone else: a budget per sender.
    ctx.limits.check(
        rate_limit::FRIEND_REQUEST,
        &format!("user:{}", principal.user_id),
    )?;
    user_profile(&ctx.store, user_id.0)
        .await?
        .filter(|u| u.is_active)
        .ok_or_else(|| ServiceError::NotFound(format!("user {user_id} not found")))?;
    crate::users::ensure_reachable(ctx, principal.user_id, user_id).await?;
    let now = chat_db::now();
    // Two tries: a request the other side sends at the same moment makes our insert
    // clash with theirs; the second pass then sees it and accepts it.
    for _ in 0..2 {
        let existing =
            FriendshipRow::find_pair(&ctx.store.db, principal.user_id.0, user_id.0).await?;
        let row = match existing {
            None => {
                match FriendshipRow::insert_pending(
                    &ctx.store.db,
                    principal.user_id.0,
                    user_id.0,
                    now,
                )
                .await
                {
                    Ok(row) => row,
                    Err(DbError::Conflict { .. }) => continue,
                    Err(other) => return Err(other.into()),
                }
            }
            Some(row) if row.status == "accepted" => {
                return Err(ServiceError::Conflict {
                    code: "already_friends",
                    detail: "you are already friends".to_owned(),
                });
            }
            Some(row) if row.status == "pending" && row.requester_id == principal.user_id.0 => {
                return Ok((one_view(ctx, &row).await?, false));
            }
            Some(row) if row.status == "pending" => {
                return Ok((accept_row(ctx, principal, &row).await?, false));
            }
            Some(row) => {
                // Declined: `updated_at` is when, and `requester_id` still who asked.
                let again = row.updated_at + DECLINED_COOLDOWN;
                if row.requester_id == principal.user_id.0 && now < again {
                    return Err(ServiceError::Conflict {
                        code: "recently_declined",
                        detail: format!(
                            "this user declined your request; you may ask again after {}",
                            utc(again).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                    });
                }
                match FriendshipRow::transition(
                    &ctx.store.db,
                    row.id,
                    "declined",
                    "pending",
                    principal.user_id.0,
                    now,
                )
                .await?
                {
                    Some(row) => row,
                    None => continue,
                }
            }
        };
        let me = user_profile(&ctx.store, principal.user_id.0)
            .await?
            .map(|u| u.username)
            .unwrap_or_default();
        notify(
            ctx,
            user_id,
            &Notification::FriendRequest {
                request_id: row.id,
                from_user_id: principal.user_id,
                from_username: me,
            },
        )
        .await;
        return Ok((one_view(ctx, &row).await?, true));
    }
    Err(ServiceError::Conflict {
        code: "request_changed",
        detail: "the request changed meanwhile; retry".to_owned(),
    })
}

async fn incoming(
    ctx: &AppContext,
    principal: &Principal,
    request_id: i64,
) -> Result<FriendshipRow, ServiceError> {
    let row = FriendshipRow::find(&ctx.store.db, request_id)
        .await?
        .filter(|r| r.user_low == principal.user_id.0 || r.user_high == principal.user_id.0)
        .ok_or_else(|| ServiceError::NotFound(format!("friend request {request_id} not found")))?;
    if row.requester_id == principal.user_id.0 {
        return Err(ServiceError::forbidden(
            "own_request",
            "you cannot answer your own request",
        ));
    }
    if row.status != "pending" {
        return Err(ServiceError::Conflict {
            code: "not_pending",
            detail: format!("this request is already {}", row.status),
        });
    }
    Ok(row)
}

/// Accepts a request addressed to me.
pub async fn accept_request(
    ctx: &AppContext,
    principal: &Principal,
    request_id: i64,
) -> Result<FriendRequestView, ServiceError> {
    let row = incoming(ctx, principal, request_id).await?;
    accept_row(ctx, principal, &row).await
}

/// Declines a request addressed to me. The sender may ask again later.
pub async fn decline_request(
    ctx: &AppContext,
    principal: &Principal,
    request_id: i64,
) -> Result<FriendRequestView, ServiceError> {
    let row = incoming(ctx, principal, request_id).await?;
    let declined = FriendshipRow::transition(
        &ctx.store.db,
        row.id,
        "pending",
        "declined",
        row.requester_id,
        chat_db::now(),
    )
    .await?
    .ok_or_else(|| ServiceError::Conflict {
        code: "request_changed",
        detail: "the request changed meanwhile; reload it".to_owned(),
    })?;
    one_view(ctx, &declined).await
}

/// Ends a friendship (either side may).
pub async fn remove_friend(
    ctx: &AppContext,
    principal: &Principal,
    user_id: UserId,
) -> Result<(), ServiceError> {
    if FriendshipRow::delete_friendship(&ctx.store.db, principal.user_id.0, user_id.0).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound(format!(
            "user {user_id} is not your friend"
        )))
    }
}
