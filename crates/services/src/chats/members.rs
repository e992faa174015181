//! Group membership management: list, add, change role (and hand over), remove.

use chat_db::models::MembershipRow;
use chat_domain::Role;
use chat_domain::permissions;
use chat_domain::{ChatId, UserId};
use chat_selectors::chats::{membership_role, put_membership};
use chat_selectors::users::user_profile;

use crate::auth::Principal;
use crate::chats::groups::{add_membership, end_membership};
use crate::chats::views::MemberView;
use crate::chats::{access, denied, leave_chat};
use crate::events::{ChatEvent, LeftReason, Notification, notify, publish_chat};
use crate::pagination::{self, Page};
use crate::presence::online_now;
use crate::{AppContext, ServiceError};

async fn member_view(
    ctx: &AppContext,
    chat_id: ChatId,
    user_id: UserId,
) -> Result<MemberView, ServiceError> {
    let entry = MembershipRow::members(&ctx.store.db, chat_id.0, Some(user_id.0 - 1), 1)
        .await?
        .into_iter()
        .find(|m| m.membership.user_id == user_id.0)
        .ok_or_else(|| ServiceError::NotFound("not a member of this chat".to_owned()))?;
    MemberView::many(ctx, vec![entry])
        .await
        .pop()
        .ok_or_else(|| ServiceError::NotFound("not a member of this chat".to_owned()))
}

/// A chat's members, by user id.
pub async fn list_members(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<MemberView>, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::view_chat(access.header.kind, access.actor).map_err(denied)?;
    let limit = pagination::limit(limit)?;
    let after = cursor.map(pagination::decode_id_cursor).transpose()?;
    let rows = MembershipRow::members(&ctx.store.db, chat_id.0, after, limit + 1).await?;
    let online = online_now(ctx, rows.iter().map(|m| m.user.id)).await;
    let mut page = pagination::page(
        rows,
        limit,
        |m| m.membership.user_id.to_string(),
        |m| MemberView::new(m, &online),
    );
    // A direct chat under a block shows neither side the other's presence.
    if access.header.blocked {
        for member in page
            .items
            .iter_mut()
            .filter(|m| m.user_id != principal.user_id)
        {
            member.hide_presence();
        }
    }
    Ok(page)
}

/// Adds `user_id` to a group (owner, admins, site admins). Adding a member again
/// changes nothing (`false`).
pub async fn add_member(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    user_id: UserId,
) -> Result<(MemberView, bool), ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::add_member(access.header.kind, access.actor).map_err(denied)?;
    user_profile(&ctx.store, user_id.0)
        .await?
        .filter(|u| u.is_active)
        .ok_or_else(|| ServiceError::NotFound(format!("user {user_id} not found")))?;
    // A block between the two also stops adding each other to groups (a site admin
    // moderating is not stopped by a block of their own).
    if !principal.is_admin {
        crate::users::ensure_reachable(ctx, principal.user_id, user_id).await?;
    }
    if membership_role(&ctx.store, chat_id.0, user_id.0)
        .await?
        .is_some()
    {
        return Ok((member_view(ctx, chat_id, user_id).await?, false));
    }
    ctx.limits.check(
        crate::rate_limit::MEMBER_ADD,
        &format!("user:{}", principal.user_id),
    )?;
    ctx.limits
        .check(crate::rate_limit::MEMBER_ADDED, &format!("user:{user_id}"))?;
    match add_membership(ctx, chat_id, user_id, Role::Member, Some(principal.user_id)).await {
        Ok(_) => {}
        // Added concurrently by someone else: same outcome.
        Err(ServiceError::Conflict {
            code: "already_member",
            ..
        }) => {
            return Ok((member_view(ctx, chat_id, user_id).await?, false));
        }
        Err(other) => return Err(other),
    }
    notify(
        ctx,
        user_id,
        &Notification::AddedToChat {
            chat_id,
            by_user_id: principal.user_id,
        },
    )
    .await;
    Ok((member_view(ctx, chat_id, user_id).await?, true))
}

/// Sets a member's role (owner, site admins). `owner` hands the group over: the
/// previous owner becomes an admin.
pub async fn change_role(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    user_id: UserId,
    role: &str,
) -> Result<MemberView, ServiceError> {
    let role = Role::parse(role).map_err(|m| ServiceError::invalid("role", m))?;
    let access = access(ctx, principal, chat_id).await?;
    let target = membership_role(&ctx.store, chat_id.0, user_id.0)
        .await?
        .ok_or_else(|| ServiceError::NotFound("not a member of this chat".to_owned()))?;
    permissions::change_role(access.header.kind, access.actor, target).map_err(denied)?;
    if role == Role::Owner {
        let owner = MembershipRow::owner_of(&ctx.store.db, chat_id.0)
            .await?
            .ok_or_else(|| {
                ServiceError::Internal(anyhow::anyhow!("group {chat_id} has no owner"))
            })?;
        if !MembershipRow::transfer_ownership(&ctx.store.db, chat_id.0, owner, user_id.0).await? {
            return Err(ServiceError::Conflict {
                code: "membership_changed",
                detail: "the group's members changed meanwhile; retry".to_owned(),
            });
        }
        put_membership(&ctx.store, chat_id.0, owner, Some(Role::Admin)).await;
        put_membership(&ctx.store, chat_id.0, user_id.0, Some(Role::Owner)).await;
        publish_chat(
            ctx,
            chat_id,
            &ChatEvent::RoleChanged {
                chat_id,
                user_id: UserId(owner),
                role: Role::Admin,
            },
        )
        .await;
        publish_chat(
            ctx,
            chat_id,
            &ChatEvent::RoleChanged {
                chat_id,
                user_id,
                role: Role::Owner,
            },
        )
        .await;
    } else if role != target {
        MembershipRow::set_role(&ctx.store.db, chat_id.0, user_id.0, role.as_str())
            .await?
            .ok_or_else(|| ServiceError::Conflict {
                code: "membership_changed",
                detail: "not a member any more, or now the owner; reload the members".to_owned(),
            })?;
        put_membership(&ctx.store, chat_id.0, user_id.0, Some(role)).await;
        publish_chat(
            ctx,
            chat_id,
            &ChatEvent::RoleChanged {
                chat_id,
                user_id,
                role,
            },
        )
        .await;
    }
    member_view(ctx, chat_id, user_id).await
}

/// Removes `user_id` from a group (see `permissions::remove_member`); removing
/// yourself is leaving.
pub async fn remove_member(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    user_id: UserId,
) -> Result<(), ServiceError> {
    if user_id == principal.user_id {
        return leave_chat(ctx, principal, chat_id).await;
    }
    let access = access(ctx, principal, chat_id).await?;
    let target = membership_role(&ctx.store, chat_id.0, user_id.0)
        .await?
        .ok_or_else(|| ServiceError::NotFound("not a member of this chat".to_owned()))?;
    permissions::remove_member(access.header.kind, access.actor, target).map_err(denied)?;
    end_membership(
        ctx,
        chat_id,
        user_id,
        LeftReason::Removed,
        Some(principal.user_id),
    )
    .await?;
    notify(
        ctx,
        user_id,
        &Notification::RemovedFromChat {
            chat_id,
            by_user_id: principal.user_id,
        },
    )
    .await;
    Ok(())
}
