//! Chat handlers: list, create, open direct, view, change, delete, join, leave, mute.

use actix_web::{HttpResponse, web};
use chat_domain::{ChatId, UserId};
use chat_services::AppContext;
use chat_services::chats::{self, ChatView, CreateGroupInput, MuteState, UpdateChatInput};
use chat_services::pagination::Page;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, ApiJson, AuthUser, Problem};

/// Page parameters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListChats {
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// My chats, most recent activity first, with my role, unread count, last message,
/// members (for chats of up to 20) and `ws_url`.
#[utoipa::path(get, path = "/api/v1/chats", tag = "chats", security(("bearer" = []), ("oauth2" = [])), params(ListChats),
    responses((status = 200, body = Page<ChatView>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_chats(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    query: web::Query<ListChats>,
) -> Result<web::Json<Page<ChatView>>, ApiError> {
    Ok(web::Json(
        chats::list_chats(&ctx, &user.0, query.limit, query.cursor.as_deref()).await?,
    ))
}

/// A new group.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// 1–100 characters.
    #[schema(example = "Rustaceans")]
    pub name: String,
    /// Up to 1000 characters.
    pub description: Option<String>,
    /// `public` (anyone may join) or `private` (default; members are added).
    #[schema(example = "public")]
    pub visibility: Option<String>,
}

/// Create a group; you are its owner.
#[utoipa::path(post, path = "/api/v1/chats", tag = "chats", security(("bearer" = []), ("oauth2" = [])), request_body = CreateGroup,
    responses((status = 201, body = ChatView), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "In too many chats (`too_many_chats`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many groups created (`rate_limited`, `Retry-After`)", body = Problem, content_type = "application/problem+json")))]
pub async fn create_group(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    body: ApiJson<CreateGroup>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let input = CreateGroupInput {
        name: body.name,
        description: body.description,
        visibility: body.visibility,
    };
    Ok(HttpResponse::Created().json(chats::create_group(&ctx, &user.0, input).await?))
}

/// Whom to chat with.
#[derive(Debug, Deserialize, ToSchema)]
pub struct OpenDirect {
    /// The other user.
    #[schema(value_type = i64)]
    pub user_id: UserId,
}

/// Get or create the direct chat with a user (one per pair).
#[utoipa::path(post, path = "/api/v1/chats/direct", tag = "chats", security(("bearer" = []), ("oauth2" = [])), request_body = OpenDirect,
    responses(
        (status = 201, description = "Created", body = ChatView),
        (status = 200, description = "Already existed", body = ChatView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Friendship required (`friendship_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "One of the two is in too many chats (`too_many_chats`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Yourself, or bad body", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn open_direct(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    body: ApiJson<OpenDirect>,
) -> Result<HttpResponse, ApiError> {
    let (chat, created) = chats::open_direct(&ctx, &user.0, body.0.user_id).await?;
    Ok(if created {
        HttpResponse::Created().json(chat)
    } else {
        HttpResponse::Ok().json(chat)
    })
}

/// One chat (members; site admins for groups).
#[utoipa::path(get, path = "/api/v1/chats/{chat_id}", tag = "chats", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id")),
    responses((status = 200, body = ChatView), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member (`not_a_member`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_chat(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
) -> Result<web::Json<ChatView>, ApiError> {
    Ok(web::Json(
        chats::get_chat(&ctx, &user.0, path.into_inner()).await?,
    ))
}

/// A change to a group; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChat {
    /// New name.
    pub name: Option<String>,
    /// New description (empty clears it).
    pub description: Option<String>,
    /// `public` or `private`.
    pub visibility: Option<String>,
}

/// Change a group's name, description or visibility (owner, admins).
#[utoipa::path(patch, path = "/api/v1/chats/{chat_id}", tag = "chats", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id")), request_body = UpdateChat,
    responses((status = 200, body = ChatView), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update_chat(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
    body: ApiJson<UpdateChat>,
) -> Result<web::Json<ChatView>, ApiError> {
    let body = body.0;
    let input = UpdateChatInput {
        name: body.name,
        description: body.description,
        visibility: body.visibility,
    };
    Ok(web::Json(
        chats::update_chat(&ctx, &user.0, path.into_inner(), input).await?,
    ))
}

/// Delete a group with its history (owner).
#[utoipa::path(delete, path = "/api/v1/chats/{chat_id}", tag = "chats", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_chat(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
) -> Result<HttpResponse, ApiError> {
    chats::delete_chat(&ctx, &user.0, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Join a public group.
#[utoipa::path(post, path = "/api/v1/chats/{chat_id}/join", tag = "chats", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id")),
    responses((status = 200, body = ChatView), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Already a member", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat, or one you may not see (private group, direct chat)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "In too many chats (`too_many_chats`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many joins (`rate_limited`, `Retry-After`)", body = Problem, content_type = "application/problem+json")))]
pub async fn join_chat(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
) -> Result<web::Json<ChatView>, ApiError> {
    Ok(web::Json(
        chats::join_chat(&ctx, &user.0, path.into_inner()).await?,
    ))
}

/// Leave a group (its owner hands it over first).
#[utoipa::path(post, path = "/api/v1/chats/{chat_id}/leave", tag = "chats", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id")),
    responses((status = 204, description = "Left"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Owner (`owner_cannot_leave`), direct chat, or not a member", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn leave_chat(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
) -> Result<HttpResponse, ApiError> {
    chats::leave_chat(&ctx, &user.0, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Mute a chat: you stay a member and keep receiving it; the chat list says `muted` and
/// clients stop notifying you of it. Idempotent.
#[utoipa::path(put, path = "/api/v1/chats/{chat_id}/mute", tag = "chats", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id")),
    responses((status = 200, description = "Muted", body = MuteState), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member (`not_a_member`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn mute_chat(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
) -> Result<web::Json<MuteState>, ApiError> {
    Ok(web::Json(
        chats::set_muted(&ctx, &user.0, path.into_inner(), true).await?,
    ))
}

/// Unmute a chat. Idempotent.
#[utoipa::path(delete, path = "/api/v1/chats/{chat_id}/mute", tag = "chats", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id")),
    responses((status = 200, description = "Not muted", body = MuteState), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member (`not_a_member`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn unmute_chat(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
) -> Result<web::Json<MuteState>, ApiError> {
    Ok(web::Json(
        chats::set_muted(&ctx, &user.0, path.into_inner(), false).await?,
    ))
}
