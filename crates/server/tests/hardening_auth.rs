//! Privileges and credentials cannot be undone by a race, and the cheap abusive
//! requests have budgets. Both modes.

use chat_test_support::{Backend, Session, TEST_PASSWORD, TestApp, both_backends};
use serde_json::json;

both_backends!(
    admins_cannot_change_their_own_rights,
    a_rights_change_overwrites_the_cached_sessions,
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
