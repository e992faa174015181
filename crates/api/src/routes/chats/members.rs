//! Member handlers.

use actix_web::{HttpResponse, web};
use chat_domain::{ChatId, UserId};
use chat_services::AppContext;
use chat_services::chats::{self, MemberView};
use chat_services::pagination::Page;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, ApiJson, AuthUser, Problem};

/// Page parameters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ListMembers {
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A chat's members, by user id.
#[utoipa::path(get, path = "/api/v1/chats/{chat_id}/members", tag = "members", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id"), ListMembers),
    responses((status = 200, body = Page<MemberView>), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_members(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<ChatId>,
    query: web::Query<ListMembers>,
) -> Result<web::Json<Page<MemberView>>, ApiError> {
    Ok(web::Json(
        chats::list_members(
            &ctx,
            &user.0,
            path.into_inner(),
            query.limit,
            query.cursor.as_deref(),
        )
        .await?,
    ))
}

/// `/chats/{chat_id}/members/{user_id}`.
#[derive(Debug, Deserialize)]
pub struct MemberPath {
    /// The chat.
    pub chat_id: ChatId,
    /// The member.
    pub user_id: UserId,
}

/// Add a member to a group (owner, admins, site admins).
#[utoipa::path(put, path = "/api/v1/chats/{chat_id}/members/{user_id}", tag = "members", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id"), ("user_id" = i64, Path, description = "User to add")),
    responses((status = 201, description = "Added", body = MemberView), (status = 200, description = "Already a member", body = MemberView),
        (status = 401, body = Problem, content_type = "application/problem+json"), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such chat or user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The user is in too many chats (`too_many_chats`)", body = Problem, content_type = "application/problem+json")))]
pub async fn add_member(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<MemberPath>,
) -> Result<HttpResponse, ApiError> {
    let MemberPath { chat_id, user_id } = path.into_inner();
    let (member, created) = chats::add_member(&ctx, &user.0, chat_id, user_id).await?;
    Ok(if created {
        HttpResponse::Created().json(member)
    } else {
        HttpResponse::Ok().json(member)
    })
}

/// A role change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeRole {
    /// `admin`, `member`, or `owner` to hand the group over.
    #[schema(example = "admin")]
    pub role: String,
}

/// Change a member's role (owner); `owner` hands the group over.
#[utoipa::path(patch, path = "/api/v1/chats/{chat_id}/members/{user_id}", tag = "members", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id"), ("user_id" = i64, Path, description = "Member")), request_body = ChangeRole,
    responses((status = 200, body = MemberView), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn change_role(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<MemberPath>,
    body: ApiJson<ChangeRole>,
) -> Result<web::Json<MemberView>, ApiError> {
    let MemberPath { chat_id, user_id } = path.into_inner();
    Ok(web::Json(
        chats::change_role(&ctx, &user.0, chat_id, user_id, &body.0.role).await?,
    ))
}

/// Remove a member (owner: anyone else; admins: members; site admins: anyone but the owner).
#[utoipa::path(delete, path = "/api/v1/chats/{chat_id}/members/{user_id}", tag = "members", security(("bearer" = []), ("oauth2" = [])),
    params(("chat_id" = i64, Path, description = "Chat id"), ("user_id" = i64, Path, description = "Member")),
    responses((status = 204, description = "Removed"), (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn remove_member(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<MemberPath>,
) -> Result<HttpResponse, ApiError> {
    let MemberPath { chat_id, user_id } = path.into_inner();
    chats::remove_member(&ctx, &user.0, chat_id, user_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
