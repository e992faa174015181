//! Group chats: create, view, change, delete, discover, join, leave.

use chat_db::models::{
    BlockRow, ChatChanges, ChatRow, HistoryRange, MembershipRow, MessageRow, NewChat,
};
use chat_domain::permissions;
use chat_domain::{ChatId, Seq, UserId};
use chat_domain::{ChatName, Description, FieldErrors, Role, Visibility};
use chat_selectors::chats::{ChatHeader, put_chat_header, put_membership};

use crate::auth::Principal;
use crate::chats::views::{ChatView, GroupListing, MEMBER_PREVIEW_MAX, MemberView, MessageView};
use crate::chats::{access, denied};
use crate::events::{ChatEvent, LeftReason, publish_chat, publish_joined, publish_left};
use crate::pagination::{self, Page};
use crate::rate_limit;
use crate::{AppContext, ServiceError};

/// A new group.
#[derive(Debug, Clone, Default)]
pub struct CreateGroupInput {
    /// Name (1–100 characters).
    pub name: String,
    /// Description (up to 1000 characters).
    pub description: Option<String>,
    /// `public` or `private` (default `private`).
    pub visibility: Option<String>,
}

/// A change to a group; absent fields stay.
#[derive(Debug, Clone, Default)]
pub struct UpdateChatInput {
    /// New name.
    pub name: Option<String>,
    /// New description (empty clears it).
    pub description: Option<String>,
    /// New visibility.
    pub visibility: Option<String>,
}

/// The full view of one chat for `viewer`: membership, last message, members if few.
pub(crate) async fn full_view(
    ctx: &AppContext,
    chat: ChatRow,
    viewer: UserId,
) -> Result<ChatView, ServiceError> {
    let db = &ctx.store.db;
    let membership = MembershipRow::find(db, chat.id, viewer.0).await?;
    let mut last = MessageRow::history(db, chat.id, HistoryRange::Before(None), 1)
        .await?
        .into_iter()
        .next()
        .map(MessageView::from);
    crate::reactions::attach(ctx, viewer, last.iter_mut()).await?;
    let members = if chat.member_count <= MEMBER_PREVIEW_MAX {
        let mut members =
            MemberView::many(ctx, MembershipRow::members_of(db, &[chat.id]).await?).await;
        // The other side of a direct chat under a block shows no presence.
        if chat.kind == "direct" {
            let blocked = BlockRow::partners_of(db, viewer.0).await?;
            for member in members
                .iter_mut()
                .filter(|m| blocked.contains(&m.user_id.0))
            {
                member.hide_presence();
            }
        }
        Some(members)
    } else {
        None
    };
    let mut view = ChatView::new(chat, membership.as_ref(), last, members);
    if membership.is_some() {
        let mentions = MembershipRow::unread_mentions(db, viewer.0, Some(view.id.0)).await?;
        view.unread_mentions = Some(count_for(&mentions, view.id.0));
    }
    Ok(view)
}

/// A chat's count in [`MembershipRow::unread_mentions`]' answer (0 when absent).
pub(crate) fn count_for(counts: &[(i64, i64)], chat_id: i64) -> i64 {
    counts
        .iter()
        .find(|(chat, _)| *chat == chat_id)
        .map_or(0, |(_, n)| *n)
}

pub(crate) async fn load_chat(ctx: &AppContext, chat_id: ChatId) -> Result<ChatRow, ServiceError> {
    ChatRow::find(&ctx.store.db, chat_id.0)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("chat {chat_id} not found")))
}

fn parse_visibility(errors: &mut FieldErrors, raw: Option<&str>) -> Option<Visibility> {
    raw.and_then(|v| errors.check("visibility", Visibility::parse(v)))
}

/// Creates a group; the caller is its owner.
pub async fn create_group(
    ctx: &AppContext,
    principal: &Principal,
    input: CreateGroupInput,
) -> Result<ChatView, ServiceError> {
    let mut errors = FieldErrors::new();
    let name = errors.check("name", ChatName::parse(&input.name));
    let description = input
        .description
        .as_deref()
        .and_then(|d| errors.check("description", Description::parse(d)));
    let visibility = parse_visibility(&mut errors, input.visibility.as_deref());
    let name = errors
        .finish(|| name)?
        .ok_or_else(|| ServiceError::invalid("name", "is required"))?;
    let description = description.and_then(Description::into_option);
    let visibility = visibility.unwrap_or(Visibility::Private);
    ctx.limits.check(
        rate_limit::GROUP_CREATE,
        &format!("user:{}", principal.user_id),
    )?;
    ensure_room_for_chat(ctx, principal.user_id).await?;
    let now = chat_db::now();
    let new = NewChat {
        kind: "group",
        name: Some(name.as_str()),
        description: description.as_deref(),
        visibility: visibility.as_str(),
        direct_key: None,
        created_by: Some(principal.user_id.0),
        created_at: now,
        last_activity_at: now,
        member_count: 1,
    };
    let (chat, _) = ChatRow::create(
        &ctx.store.db,
        new,
        &[(principal.user_id.0, Role::Owner.as_str())],
    )
    .await?;
    // Write-through, not just invalidation: a probe of the next id may have cached "no
    // such chat" moments ago.
    put_chat_header(&ctx.store, chat.id, Some(&ChatHeader::from_row(&chat))).await;
    put_membership(&ctx.store, chat.id, principal.user_id.0, Some(Role::Owner)).await;
    // The owner's open `/ws` sockets follow the new group as this event passes (they
    // were opened before it existed).
    let username = chat_selectors::users::user_profile(&ctx.store, principal.user_id.0)
        .await?
        .map(|p| p.username)
        .unwrap_or_default();
    let joined = ChatEvent::MemberJoined {
        chat_id: ChatId(chat.id),
        user_id: principal.user_id,
        username,
        role: Role::Owner,
        added_by: None,
        last_seq: Seq(chat.last_seq),
    };
    publish_joined(ctx, ChatId(chat.id), &[principal.user_id], &[joined], false).await;
    tracing::info!(
        chat.id = chat.id,
        user.id = principal.user_id.0,
        "group created"
    );
    full_view(ctx, chat, principal.user_id).await
}

/// One chat, for its members (and site admins, for groups).
pub async fn get_chat(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
) -> Result<ChatView, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::view_chat(access.header.kind, access.actor).map_err(denied)?;
    full_view(ctx, load_chat(ctx, chat_id).await?, principal.user_id).await
}

/// Changes a group's name, description or visibility (owner, admins, site admins).
pub async fn update_chat(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    input: UpdateChatInput,
) -> Result<ChatView, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::update_chat(access.header.kind, access.actor).map_err(denied)?;
    let mut errors = FieldErrors::new();
    let name = input
        .name
        .as_deref()
        .and_then(|n| errors.check("name", ChatName::parse(n)));
    let description = input
        .description
        .as_deref()
        .and_then(|d| errors.check("description", Description::parse(d)));
    let visibility = parse_visibility(&mut errors, input.visibility.as_deref());
    errors.finish(|| ())?;
    let description = description.map(Description::into_option);
    let changes = ChatChanges {
        name: name.as_ref().map(ChatName::as_str),
        description: description.as_ref().map(|d| d.as_deref()),
        visibility: visibility.map(Visibility::as_str),
    };
    let chat = ChatRow::update(&ctx.store.db, chat_id.0, changes)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("chat {chat_id} not found")))?;
    let header = ChatHeader::from_row(&chat);
    put_chat_header(&ctx.store, chat_id.0, Some(&header)).await;
    let event = ChatEvent::Updated {
        chat_id,
        name: chat.name.clone(),
        description: chat.description.clone(),
        visibility: header.visibility,
    };
    publish_chat(ctx, chat_id, &event).await;
    full_view(ctx, chat, principal.user_id).await
}

/// Deletes a group with its history (owner, site admins).
pub async fn delete_chat(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
) -> Result<(), ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::delete_chat(access.header.kind, access.actor).map_err(denied)?;
    let members = MembershipRow::member_ids(&ctx.store.db, chat_id.0).await?;
    if !ChatRow::delete(&ctx.store.db, chat_id.0).await? {
        return Err(ServiceError::NotFound(format!("chat {chat_id} not found")));
    }
    // In the background, by the chat's key prefix: its rows are gone with it, so none of
    // its files is served again meanwhile.
    crate::attachments::remove_chat_files(ctx, chat_id);
    put_chat_header(&ctx.store, chat_id.0, None).await;
    for user_id in &members {
        put_membership(&ctx.store, chat_id.0, *user_id, None).await;
    }
    let members: Vec<UserId> = members.into_iter().map(UserId).collect();
    let deleted = ChatEvent::Deleted {
        chat_id,
        deleted_by: principal.user_id,
    };
    publish_left(ctx, chat_id, &members, &deleted).await;
    tracing::info!(
        chat.id = chat_id.0,
        user.id = principal.user_id.0,
        "group deleted"
    );
    Ok(())
}

/// Public groups whose name contains `query`, by id.
pub async fn discover_groups(
    ctx: &AppContext,
    query: Option<&str>,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<GroupListing>, ServiceError> {
    let limit = pagination::limit(limit)?;
    let after = cursor.map(pagination::decode_id_cursor).transpose()?;
    let query = query.map(str::trim).filter(|q| !q.is_empty());
    let rows = ChatRow::list(&ctx.store.db, true, query, after, limit + 1).await?;
    Ok(pagination::page(
        rows,
        limit,
        |c| c.id.to_string(),
        GroupListing::from,
    ))
}

/// Joins a public group.
pub async fn join_chat(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
) -> Result<ChatView, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::join_chat(access.header.kind, access.header.visibility, access.actor)
        .map_err(denied)?;
    ctx.limits.check(
        rate_limit::CHAT_JOIN,
        &format!("user:{}", principal.user_id),
    )?;
    add_membership(ctx, chat_id, principal.user_id, Role::Member, None).await?;
    full_view(ctx, load_chat(ctx, chat_id).await?, principal.user_id).await
}

/// 409 `too_many_chats` when `user_id` already belongs to `CHAT_MAX_CHATS_PER_USER`
/// chats. (Two concurrent joins may both pass the count: the cap can be passed by the
/// number of requests in flight, which the per-user rate limits keep small.)
pub(crate) async fn ensure_room_for_chat(
    ctx: &AppContext,
    user_id: UserId,
) -> Result<(), ServiceError> {
    let max = ctx.chat.max_chats_per_user;
    if MembershipRow::count_of(&ctx.store.db, user_id.0).await? >= max {
        return Err(ServiceError::Conflict {
            code: "too_many_chats",
            detail: format!("a user may belong to at most {max} chats (CHAT_MAX_CHATS_PER_USER)"),
        });
    }
    Ok(())
}

/// Stores a membership, records it in the cache and announces it. Already a member
/// is a 409 `already_member`; a user in too many chats a 409 `too_many_chats`.
pub(crate) async fn add_membership(
    ctx: &AppContext,
    chat_id: ChatId,
    user_id: UserId,
    role: Role,
    added_by: Option<UserId>,
) -> Result<MembershipRow, ServiceError> {
    ensure_room_for_chat(ctx, user_id).await?;
    let row = MembershipRow::add(
        &ctx.store.db,
        chat_id.0,
        user_id.0,
        role.as_str(),
        chat_db::now(),
    )
    .await
    .map_err(|e| match e {
        chat_db::DbError::Conflict { .. } => ServiceError::Conflict {
            code: "already_member",
            detail: "already a member of this chat".to_owned(),
        },
        other => other.into(),
    })?;
    put_membership(&ctx.store, chat_id.0, user_id.0, Some(role)).await;
    let username = chat_selectors::users::user_profile(&ctx.store, user_id.0)
        .await?
        .map(|p| p.username)
        .unwrap_or_default();
    let last_seq = ChatRow::find(&ctx.store.db, chat_id.0)
        .await?
        .map_or(0, |chat| chat.last_seq);
    let joined = ChatEvent::MemberJoined {
        chat_id,
        user_id,
        username,
        role,
        added_by,
        last_seq: Seq(last_seq),
    };
    publish_joined(ctx, chat_id, &[user_id], &[joined], true).await;
    Ok(row)
}

/// Ends a membership, records it and announces it.
pub(crate) async fn end_membership(
    ctx: &AppContext,
    chat_id: ChatId,
    user_id: UserId,
    reason: LeftReason,
    removed_by: Option<UserId>,
) -> Result<(), ServiceError> {
    if !MembershipRow::remove(&ctx.store.db, chat_id.0, user_id.0).await? {
        return Err(ServiceError::Conflict {
            code: "membership_changed",
            detail: "not a member any more, or now the owner; reload the members".to_owned(),
        });
    }
    put_membership(&ctx.store, chat_id.0, user_id.0, None).await;
    let left = ChatEvent::MemberLeft {
        chat_id,
        user_id,
        reason,
        removed_by,
    };
    publish_left(ctx, chat_id, &[user_id], &left).await;
    Ok(())
}

/// The caller's mute setting of a chat.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct MuteState {
    /// Chat.
    #[schema(value_type = i64)]
    pub chat_id: ChatId,
    /// Whether the chat is muted for the caller.
    pub muted: bool,
}

/// Mutes (or unmutes) a chat for the caller, a member: they stay a member and keep
/// receiving its messages; the chat list says `muted`, and clients stop notifying them
/// of it. Idempotent.
pub async fn set_muted(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
    muted: bool,
) -> Result<MuteState, ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::post_in_chat(access.actor).map_err(denied)?;
    MembershipRow::set_muted(&ctx.store.db, chat_id.0, principal.user_id.0, muted)
        .await?
        .ok_or_else(|| {
            ServiceError::forbidden("not_a_member", "you are not a member of this chat")
        })?;
    Ok(MuteState { chat_id, muted })
}

/// Leaves a group (not its owner, who hands it over first).
pub async fn leave_chat(
    ctx: &AppContext,
    principal: &Principal,
    chat_id: ChatId,
) -> Result<(), ServiceError> {
    let access = access(ctx, principal, chat_id).await?;
    permissions::leave_chat(access.header.kind, access.actor).map_err(denied)?;
    end_membership(ctx, chat_id, principal.user_id, LeftReason::Left, None).await
}
