//! Sign-up, and the operator's `create-admin`.

use chat_db::DbError;
use chat_db::models::{NewUser, UserChanges, UserRow};
use chat_domain::{DisplayName, Email, FieldErrors, Password, Username};

use crate::auth::passwords;
use crate::auth::session::{TokenPair, open_session};
use crate::rate_limit;
use crate::users::UserView;
use crate::{AppContext, ServiceError};

/// What a sign-up form carries.
#[derive(Debug, Clone)]
pub struct RegisterInput {
    /// Requested username.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Password.
    pub password: String,
    /// Optional display name (defaults to the username).
    pub display_name: Option<String>,
}

struct ValidAccount {
    username: Username,
    email: Email,
    password: Password,
    display_name: DisplayName,
}

fn validate(input: &RegisterInput) -> Result<ValidAccount, FieldErrors> {
    let mut errors = FieldErrors::new();
    let username = errors.check("username", Username::parse(&input.username));
    let email = errors.check("email", Email::parse(&input.email));
    let password = errors.check("password", Password::parse(&input.password));
    let display_name = match &input.display_name {
        Some(raw) => errors.check("display_name", DisplayName::parse(raw)),
        None => username
            .as_ref()
            .and_then(|u| DisplayName::parse(u.as_str()).ok()),
    };
    match (username, email, password, display_name) {
        (Some(username), Some(email), Some(password), Some(display_name)) if errors.is_empty() => {
            Ok(ValidAccount {
                username,
                email,
                password,
                display_name,
            })
        }
        _ => Err(errors),
    }
}

/// A unique-index clash, told apart by the field it is on.
fn taken(err: DbError) -> ServiceError {
    if err.is_conflict_on("username") {
        ServiceError::Conflict {
            code: "username_taken",
            detail: "this username is already taken".to_owned(),
        }
    } else if err.is_conflict_on("email") {
        ServiceError::Conflict {
            code: "email_taken",
            detail: "this e-mail address is already registered".to_owned(),
        }
    } else {
        err.into()
    }
}

async fn insert_account(
    ctx: &AppContext,
    account: &ValidAccount,
    is_admin: bool,
) -> Result<UserRow, ServiceError> {
    let password_hash = passwords::hash(&account.password, ctx.auth.bcrypt_cost).await?;
    let username_key = account.username.key();
    UserRow::insert(
        &ctx.store.db,
        NewUser {
            username: account.username.as_str(),
            username_key: &username_key,
            email: account.email.as_str(),
            display_name: account.display_name.as_str(),
            password_hash: &password_hash,
            is_admin,
            created_at: chat_db::now(),
        },
    )
    .await
    .map_err(taken)
}

/// Creates an account and logs it in. Rate-limited per client address.
pub async fn register(
    ctx: &AppContext,
    client: &str,
    input: RegisterInput,
) -> Result<TokenPair, ServiceError> {
    ctx.limits.check(rate_limit::REGISTER, client)?;
    let account = validate(&input)?;
    let user = insert_account(ctx, &account, false).await?;
    // A probe of the next user id may have cached "no such user" moments ago.
    chat_selectors::users::put_user_profile(
        &ctx.store,
        &chat_selectors::users::UserProfile::from(&user),
    )
    .await;
    tracing::info!(user.id = user.id, "account created");
    open_session(ctx, &user).await
}

/// Makes `username` a site admin: creates the account if it does not exist
/// (`email` and `password` are then required), or promotes and re-activates it.
/// Returns the account and whether it was created.
pub async fn create_admin(
    ctx: &AppContext,
    input: RegisterInput,
) -> Result<(UserView, bool), ServiceError> {
    let username =
        Username::parse(&input.username).map_err(|m| ServiceError::invalid("username", m))?;
    if let Some(existing) = UserRow::find_by_login(&ctx.store.db, username.as_str())
        .await?
        .filter(|u| u.username_key == username.key())
    {
        let changes = UserChanges {
            is_admin: Some(true),
            is_active: Some(true),
            ..UserChanges::default()
        };
        let user = UserRow::update(&ctx.store.db, existing.id, changes)
            .await?
            .ok_or_else(|| ServiceError::NotFound("user vanished".to_owned()))?;
        return Ok((UserView::from(user), false));
    }
    let account = validate(&input)?;
    let user = insert_account(ctx, &account, true).await?;
    chat_selectors::users::put_user_profile(
        &ctx.store,
        &chat_selectors::users::UserProfile::from(&user),
    )
    .await;
    Ok((UserView::from(user), true))
}
