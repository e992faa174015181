//! Privileges and credentials cannot be undone by a race, and the cheap abusive
//! requests have budgets. Both modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chat_test_support::{Backend, Session, TEST_PASSWORD, TestApp, WS_WAIT, both_backends};
use serde_json::json;
use tokio::sync::Notify;

both_backends!(
    admins_cannot_change_their_own_rights,
    a_rights_change_overwrites_the_cached_sessions,
    a_password_change_wins_against_a_login_that_checked_the_old_password,
    a_deactivation_wins_against_a_login_that_checked_the_password,
);

/// Registers `username` and makes them a site admin (straight in the database, as
/// `chat-server create-admin` does), then logs them in.
async fn make_admin(app: &TestApp, username: &str) -> anyhow::Result<Session> {
    let user = app.register(username).await?;
    let changes = chat_db::models::UserChanges {
        is_admin: Some(true),
        ..Default::default()
    };
    chat_db::models::UserRow::update(&app.context.store.db, user.user_id, changes).await?;
    app.login(username, TEST_PASSWORD).await
}

/// The cache key of the session behind an access token.
fn session_key(app: &TestApp, session: &Session) -> anyhow::Result<String> {
    let claims =
        chat_services::auth::tokens::verify_access(&app.context.auth.keys, &session.access_token)?;
    Ok(chat_selectors::keys::session(&claims.sid))
}

async fn admins_cannot_change_their_own_rights(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let root = make_admin(&app, "root").await?;
    let me = format!("/api/v1/admin/users/{}", root.user_id);
    // Granting oneself admin rights is refused too: a session whose cached flag is stale
    // (just demoted on another instance) must not re-grant itself what was withdrawn.
    for body in [
        json!({"is_admin": true}),
        json!({"is_admin": false}),
        json!({"is_active": false}),
        json!({"is_active": true, "is_admin": true}),
    ] {
        app.patch(&me, Some(&root.access_token), body)
            .await?
            .expect_problem(403, "cannot_change_self")?;
    }
    // Nothing else about oneself is off limits: re-activating an active account is a no-op.
    app.patch(&me, Some(&root.access_token), json!({"is_active": true}))
        .await?
        .expect_status(200)?;
    let row = chat_db::models::UserRow::find(&app.context.store.db, root.user_id).await?;
    assert_eq!(row.map(|u| (u.is_admin, u.is_active)), Some((true, true)));
    app.shutdown().await;
    Ok(())
}

async fn a_rights_change_overwrites_the_cached_sessions(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let root = make_admin(&app, "root").await?;
    let ann = make_admin(&app, "ann").await?;
    // Ann's request caches her session as an admin's.
    app.get("/api/v1/admin/users", Some(&ann.access_token))
        .await?
        .expect_status(200)?;
    let key = session_key(&app, &ann)?;
    let cache = &app.context.store.cache;
    let stale = cache
        .get(&key)
        .await?
        .ok_or_else(|| anyhow::anyhow!("ann's session was not cached"))?;
    assert!(stale.contains(r#""is_admin":true"#), "{stale}");
    app.patch(
        &format!("/api/v1/admin/users/{}", ann.user_id),
        Some(&root.access_token),
        json!({"is_admin": false}),
    )
    .await?
    .expect_status(200)?;
    // The entry holds the new flag (overwritten, not deleted).
    let entry = cache.get(&key).await?;
    let entry: serde_json::Value = serde_json::from_str(entry.as_deref().unwrap_or("null"))?;
    assert_eq!(
        (&entry["user_id"], &entry["is_admin"]),
        (&json!(ann.user_id), &json!(false)),
        "the cached session after the change: {entry}"
    );
    // The race: a request of Ann's read her row before the change and fills the cache
    // after it. Fills only add, so the old flag does not come back.
    cache
        .add(&key, &stale, chat_selectors::sessions::SESSION_TTL)
        .await?;
    app.get("/api/v1/admin/users", Some(&ann.access_token))
        .await?
        .expect_problem(403, "admin_only")?;
    app.patch(
        &format!("/api/v1/admin/users/{}", ann.user_id),
        Some(&ann.access_token),
        json!({"is_admin": true}),
    )
    .await?
    .expect_problem(403, "admin_only")?;
    // Granting is written through the same way.
    app.patch(
        &format!("/api/v1/admin/users/{}", ann.user_id),
        Some(&root.access_token),
        json!({"is_admin": true}),
    )
    .await?
    .expect_status(200)?;
    let entry = cache.get(&key).await?.unwrap_or_default();
    assert!(entry.contains(r#""is_admin":true"#), "{entry}");
    app.get("/api/v1/admin/users", Some(&ann.access_token))
        .await?
        .expect_status(200)?;
    app.shutdown().await;
    Ok(())
}

/// Holds the next log-in between its password check and its session insert, until
/// released: the window a concurrent credential change must win.
#[derive(Clone, Default)]
struct LoginGate {
    armed: Arc<AtomicBool>,
    reached: Arc<Notify>,
    go: Arc<Notify>,
}

impl LoginGate {
    fn hook(&self) -> chat_services::TestHook {
        let gate = self.clone();
        Arc::new(move || {
            let gate = gate.clone();
            Box::pin(async move {
                if gate.armed.swap(false, Ordering::SeqCst) {
                    gate.reached.notify_one();
                    gate.go.notified().await;
                }
            })
        })
    }

    /// Logs `username` in with `password`, running `meanwhile` after the password was
    /// verified and before the session is stored; the log-in's answer.
    async fn login_around(
        &self,
        app: &TestApp,
        username: &str,
        password: &str,
        meanwhile: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<chat_test_support::Response> {
        self.armed.store(true, Ordering::SeqCst);
        let login = app.post(
            "/api/v1/auth/login",
            None,
            json!({"username": username, "password": password}),
        );
        let race = async {
            tokio::time::timeout(WS_WAIT, self.reached.notified()).await?;
            let done = meanwhile.await;
            self.go.notify_one();
            done
        };
        let (login, race) = tokio::join!(login, race);
        race?;
        login
    }
}

async fn live_sessions(app: &TestApp, user_id: i64) -> anyhow::Result<usize> {
    let live = chat_db::models::SessionRow::live_ids_for_user(
        &app.context.store.db,
        user_id,
        chat_db::now(),
    )
    .await?;
    Ok(live.len())
}

async fn a_password_change_wins_against_a_login_that_checked_the_old_password(
    backend: Backend,
) -> anyhow::Result<()> {
    let gate = LoginGate::default();
    let app = TestApp::spawn_with(backend, |c| {
        c.login_after_password_check = Some(gate.hook())
    })
    .await?;
    let ann = app.register("ann").await?;
    let new_password = "a brand new password";
    // bcrypt has accepted the old password; the change commits before the session would.
    let login = gate
        .login_around(&app, "ann", TEST_PASSWORD, async {
            app.patch(
                "/api/v1/users/me",
                Some(&ann.access_token),
                json!({"old_password": TEST_PASSWORD, "new_password": new_password}),
            )
            .await?
            .expect_status(200)?;
            Ok(())
        })
        .await?;
    login.expect_problem(401, "invalid_credentials")?;
    assert_eq!(
        live_sessions(&app, ann.user_id).await?,
        1,
        "only the session that changed the password is live"
    );
    app.login("ann", new_password).await?;
    app.shutdown().await;
    Ok(())
}

async fn a_deactivation_wins_against_a_login_that_checked_the_password(
    backend: Backend,
) -> anyhow::Result<()> {
    let gate = LoginGate::default();
    let app = TestApp::spawn_with(backend, |c| {
        c.login_after_password_check = Some(gate.hook())
    })
    .await?;
    let root = make_admin(&app, "root").await?;
    let ann = app.register("ann").await?;
    let login = gate
        .login_around(&app, "ann", TEST_PASSWORD, async {
            app.patch(
                &format!("/api/v1/admin/users/{}", ann.user_id),
                Some(&root.access_token),
                json!({"is_active": false}),
            )
            .await?
            .expect_status(200)?;
            Ok(())
        })
        .await?;
    // The answer a log-in gets when the deactivation came first.
    login.expect_problem(403, "account_disabled")?;
    assert_eq!(live_sessions(&app, ann.user_id).await?, 0);
    app.shutdown().await;
    Ok(())
}
