//! Log-in with username or e-mail and password.

use chat_db::models::UserRow;

use crate::auth::passwords;
use crate::auth::session::{TokenPair, open_verified_session};
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

fn account_disabled() -> ServiceError {
    ServiceError::forbidden("account_disabled", "this account has been deactivated")
}

/// Checks the credentials and opens a session. Unknown user and wrong password get
/// the same answer, in the same time (a dummy hash is verified for unknown users). A
/// password change or deactivation that commits while the password is being checked
/// wins: the log-in then fails as if the change had come first.
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
        return Err(account_disabled());
    }
    if let Some(hook) = &ctx.auth.after_password_check {
        hook().await;
    }
    // bcrypt took a while: the password may have been changed (and every other session
    // ended) meanwhile. The session is stored only if the verified hash is still current.
    if let Some(pair) = open_verified_session(ctx, &user).await? {
        return Ok(pair);
    }
    tracing::info!(
        user.id = user.id,
        "log-in refused: the account changed while its password was checked"
    );
    // The same answer as if the change had come first.
    let deactivated = UserRow::find(&ctx.store.db, user.id)
        .await?
        .is_some_and(|now| now.password_hash == user.password_hash && !now.is_active);
    Err(if deactivated {
        account_disabled()
    } else {
        bad_credentials()
    })
}
