//! `PATCH /api/v1/users/me`

use actix_web::web;
use chat_services::AppContext;
use chat_services::users::{self, UpdateMeInput, UserView};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{ApiError, ApiJson, AuthUser, Problem};

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
