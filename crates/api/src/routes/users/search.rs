//! `GET /api/v1/users`

use actix_web::web;
use chat_services::AppContext;
use chat_services::pagination::Page;
use chat_services::users::{self, PublicUser};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{ApiError, AuthUser, Problem};

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
