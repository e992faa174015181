//! Log-in with username or e-mail and password.

use chat_db::models::UserRow;

use crate::auth::passwords;
use crate::auth::session::{TokenPair, open_session};
use crate::rate_limit;
use crate::{AppContext, ServiceError};

/// Longest login name looked up; anything longer cannot exist.
const MAX_LOGIN_LEN: usize = 254;

/// Credentials as submitted.
#[derive(Debug, Clone)]
pub struct LoginInput {
    /// Username (any case) or e-mail.
    pub login: String,
    /// Password.
    pub password: String,
}

fn bad_credentials() -> ServiceError {
    ServiceError::unauthorized("invalid_credentials", "invalid username or password")
}

/// Checks the credentials and opens a session. Unknown user and wrong password get
/// the same answer, in the same time (a dummy hash is verified for unknown users).
pub async fn login(
    ctx: &AppContext,
    client: &str,
    input: LoginInput,
) -> Result<TokenPair, ServiceError> {
    ctx.limits.check(rate_limit::LOGIN, client)?;
    let login = input.login.trim();
    if login.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "username",
            "must not contain control characters",
        ));
    }
    if login.is_empty() || input.password.is_empty() {
        let mut errors = chat_domain::FieldErrors::new();
        if login.is_empty() {
            errors.add("username", "is required");
        }
        if input.password.is_empty() {
            errors.add("password", "is required");
        }
        return Err(errors.into());
    }
    let user = if login.len() <= MAX_LOGIN_LEN {
        UserRow::find_by_login(&ctx.store.db, login).await?
    } else {
        None
    };
    let matches = passwords::verify(
        &input.password,
        user.as_ref().map(|u| u.password_hash.as_str()),
        ctx.auth.bcrypt_cost,
    )
    .await?;
    let user = match user {
        Some(user) if matches => user,
        _ => return Err(bad_credentials()),
    };
    if !user.is_active {
        return Err(ServiceError::forbidden(
            "account_disabled",
            "this account has been deactivated",
        ));
    }
    open_session(ctx, &user).await
}
