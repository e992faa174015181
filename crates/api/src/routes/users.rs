//! `/users`: my account and the user directory.

use crate::{ApiError, ApiJson, AuthUser, Problem};
use actix_web::web;
use chat_domain::UserId;
use chat_services::AppContext;
use chat_services::pagination::Page;
use chat_services::users::{self, BlockState, BlockedUser, PublicUser, UpdateMeInput, UserView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

// `GET /api/v1/users/me`

/// The caller's own account.
#[utoipa::path(
    get, path = "/api/v1/users/me", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "My account", body = UserView),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_me(
    ctx: web::Data<AppContext>,
    user: AuthUser,
) -> Result<web::Json<UserView>, ApiError> {
    Ok(web::Json(users::get_me(&ctx, &user.0).await?))
}

// `PATCH /api/v1/users/me`

/// A change to my account; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// New display name (1–64 characters).
    pub display_name: Option<String>,
    /// Current password; required with `new_password`.
    #[serde(alias = "current_password")]
    pub old_password: Option<String>,
    /// New password (8 characters to 72 bytes). Ends every other session.
    pub new_password: Option<String>,
}

/// Change my display name and/or password.
///
/// A password change requires the old password and logs out every other session.
#[utoipa::path(
    patch, path = "/api/v1/users/me", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = UpdateMe,
    responses(
        (status = 200, description = "The updated account", body = UserView),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or wrong old password", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update_me(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    body: ApiJson<UpdateMe>,
) -> Result<web::Json<UserView>, ApiError> {
    let body = body.0;
    let input = UpdateMeInput {
        display_name: body.display_name,
        old_password: body.old_password,
        new_password: body.new_password,
    };
    Ok(web::Json(users::update_me(&ctx, &user.0, input).await?))
}

// `GET /api/v1/users`

/// Directory search parameters.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchUsers {
    /// Part of a username or display name (case-insensitive); omit to list everyone.
    pub q: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Search the user directory (active users, by username).
#[utoipa::path(
    get, path = "/api/v1/users", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(SearchUsers),
    responses(
        (status = 200, description = "A page of users", body = Page<PublicUser>),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn search_users(
    ctx: web::Data<AppContext>,
    _user: AuthUser,
    query: web::Query<SearchUsers>,
) -> Result<web::Json<Page<PublicUser>>, ApiError> {
    let page = users::search_users(
        &ctx,
        query.q.as_deref(),
        query.limit,
        query.cursor.as_deref(),
    )
    .await?;
    Ok(web::Json(page))
}

// `GET /api/v1/users/{user_id}`

/// A user's public profile.
#[utoipa::path(
    get, path = "/api/v1/users/{user_id}", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "Public profile", body = PublicUser),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such (active) user", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_user(
    ctx: web::Data<AppContext>,
    _user: AuthUser,
    path: web::Path<UserId>,
) -> Result<web::Json<PublicUser>, ApiError> {
    Ok(web::Json(users::get_user(&ctx, path.into_inner()).await?))
}

// `PUT /api/v1/users/{user_id}/block`

/// Block a user: they can no longer send me friend requests, open a direct chat with me
/// or post in ours (nor can I until I unblock them); their notifications stop reaching
/// me; a friend request or friendship between us ends. They are told only "cannot
/// message this user" when they try. Idempotent.
#[utoipa::path(
    put, path = "/api/v1/users/{user_id}/block", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "Blocked", body = BlockState),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "That is me", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn block_user(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<UserId>,
) -> Result<web::Json<BlockState>, ApiError> {
    Ok(web::Json(
        users::block_user(&ctx, &user.0, path.into_inner()).await?,
    ))
}

// `DELETE /api/v1/users/{user_id}/block`

/// Unblock a user (their own block of me, if any, stands). Idempotent.
#[utoipa::path(
    delete, path = "/api/v1/users/{user_id}/block", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "Not blocked", body = BlockState),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn unblock_user(
    ctx: web::Data<AppContext>,
    user: AuthUser,
    path: web::Path<UserId>,
) -> Result<web::Json<BlockState>, ApiError> {
    Ok(web::Json(
        users::unblock_user(&ctx, &user.0, path.into_inner()).await?,
    ))
}

/// The users I block.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockList {
    /// Most recent first (at most 1 000).
    pub items: Vec<BlockedUser>,
}

// `GET /api/v1/users/me/blocks`

/// The users I block, most recent first.
#[utoipa::path(
    get, path = "/api/v1/users/me/blocks", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Blocked users", body = BlockList),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_blocks(
    ctx: web::Data<AppContext>,
    user: AuthUser,
) -> Result<web::Json<BlockList>, ApiError> {
    Ok(web::Json(BlockList {
        items: users::list_blocks(&ctx, &user.0).await?,
    }))
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users/me")
            .route(web::get().to(get_me))
            .route(web::patch().to(update_me)),
    )
    .service(web::resource("/users/me/blocks").route(web::get().to(list_blocks)))
    .service(web::resource("/users").route(web::get().to(search_users)))
    .service(web::resource("/users/{user_id}").route(web::get().to(get_user)))
    .service(
        web::resource("/users/{user_id}/block")
            .route(web::put().to(block_user))
            .route(web::delete().to(unblock_user)),
    );
}
