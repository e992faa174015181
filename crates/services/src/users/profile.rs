//! The caller's own account.

use chat_db::models::{UserChanges, UserRow};
use chat_domain::UserId;
use chat_domain::{DisplayName, FieldErrors, Password};

use crate::auth::{Principal, passwords, revoke_user_sessions};
use crate::users::UserView;
use crate::{AppContext, ServiceError};

/// A profile change; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UpdateMeInput {
    /// New display name.
    pub display_name: Option<String>,
    /// The current password: required to set a new one.
    pub old_password: Option<String>,
    /// The new password.
    pub new_password: Option<String>,
}

async fn load(ctx: &AppContext, user_id: UserId) -> Result<UserRow, ServiceError> {
    UserRow::find(&ctx.store.db, user_id.0)
        .await?
        .ok_or_else(|| ServiceError::NotFound("user not found".to_owned()))
}

/// The caller's account.
pub async fn get_me(ctx: &AppContext, principal: &Principal) -> Result<UserView, ServiceError> {
    Ok(load(ctx, principal.user_id).await?.into())
}

/// Changes the display name and/or password. A password change needs the old
/// password and ends every other session of the user (the caller stays logged in).
pub async fn update_me(
    ctx: &AppContext,
    principal: &Principal,
    input: UpdateMeInput,
) -> Result<UserView, ServiceError> {
    let mut errors = FieldErrors::new();
    let display_name = input
        .display_name
        .as_deref()
        .and_then(|raw| errors.check("display_name", DisplayName::parse(raw)));
    let new_password = input
        .new_password
        .as_deref()
        .and_then(|raw| errors.check("new_password", Password::parse(raw)));
    if new_password.is_some() && input.old_password.as_deref().is_none_or(str::is_empty) {
        errors.add("old_password", "is required to change the password");
    }
    if input.old_password.is_some() && input.new_password.is_none() {
        errors.add("new_password", "is required when old_password is given");
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let user = load(ctx, principal.user_id).await?;
    let password_hash = match (&new_password, &input.old_password) {
        (Some(new), Some(old)) => {
            ctx.limits.check(
                crate::rate_limit::PASSWORD_CHECK,
                &format!("user:{}", user.id),
            )?;
            if !passwords::verify(old, Some(&user.password_hash), ctx.auth.bcrypt_cost).await? {
                return Err(ServiceError::invalid("old_password", "is incorrect"));
            }
            Some(passwords::hash(new, ctx.auth.bcrypt_cost).await?)
        }
        _ => None,
    };
    let changes = UserChanges {
        display_name: display_name.as_ref().map(DisplayName::as_str),
        password_hash: password_hash.as_deref(),
        ..UserChanges::default()
    };
    if changes.display_name.is_none() && changes.password_hash.is_none() {
        return Ok(user.into());
    }
    let updated = UserRow::update(&ctx.store.db, user.id, changes)
        .await?
        .ok_or_else(|| ServiceError::NotFound("user not found".to_owned()))?;
    chat_selectors::users::put_user_profile(
        &ctx.store,
        &chat_selectors::users::UserProfile::from(&updated),
    )
    .await;
    if password_hash.is_some() {
        let ended = revoke_user_sessions(ctx, UserId(user.id), Some(&principal.session_id)).await?;
        tracing::info!(
            user.id = user.id,
            other_sessions_ended = ended,
            "password changed"
        );
    }
    Ok(updated.into())
}
