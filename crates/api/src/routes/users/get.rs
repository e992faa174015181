//! `GET /api/v1/users/{user_id}`

use actix_web::web;
use chat_services::AppContext;
use chat_services::users::{self, PublicUser};

use crate::{ApiError, AuthUser, Problem};

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
    path: web::Path<i64>,
) -> Result<web::Json<PublicUser>, ApiError> {
    Ok(web::Json(users::get_user(&ctx, path.into_inner()).await?))
}
