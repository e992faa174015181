//! `GET /api/v1/users/me`

use actix_web::web;
use chat_services::AppContext;
use chat_services::users::{self, UserView};

use crate::{ApiError, AuthUser, Problem};

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
