//! Privileges and credentials cannot be undone by a race, and the cheap abusive
//! requests have budgets. Both modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chat_services::rate_limit::{
    FRIEND_REQUEST, MESSAGE_EDIT, WS_HANDSHAKE_ADDRESS, WS_HANDSHAKE_USER, WS_TICKET,
};
use chat_test_support::{
    Backend, Response, Session, TEST_PASSWORD, TestApp, WS_WAIT, both_backends,
};
use serde_json::json;
use tokio::sync::Notify;

both_backends!(
    admins_cannot_change_their_own_rights,
    a_rights_change_overwrites_the_cached_sessions,
    a_password_change_wins_against_a_login_that_checked_the_old_password,
    a_deactivation_wins_against_a_login_that_checked_the_password,
    websocket_handshakes_are_rate_limited_per_user_and_address,
    ws_tickets_and_message_edits_are_rate_limited_per_user,
    friend_requests_are_rate_limited_and_a_declined_sender_waits,
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
    ) -> anyhow::Result<Response> {
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

/// Fails unless `response` is a 429 problem with a `Retry-After` of at least a second.
fn expect_limited(response: &Response) -> anyhow::Result<()> {
    response.expect_problem(429, "rate_limited")?;
    let retry_after = response
        .header("retry-after")
        .and_then(|s| s.parse::<u64>().ok());
    anyhow::ensure!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After: {retry_after:?}"
    );
    Ok(())
}

/// Sends requests with `attempt` until one answers 429 (at most `max`); fails unless the
/// first `burst` were let through (answered `allowed`). Returns the refusal.
async fn until_limited<F, Fut>(
    burst: f64,
    max: usize,
    allowed: u16,
    mut attempt: F,
) -> anyhow::Result<Response>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<Response>>,
{
    for i in 0..max {
        let response = attempt(i).await?;
        if response.status.as_u16() == 429 {
            // Budgets refill while the loop runs, so more than the burst may pass.
            anyhow::ensure!(i as f64 >= burst, "refused after only {i} requests");
            expect_limited(&response)?;
            return Ok(response);
        }
        response.expect_status(allowed)?;
    }
    anyhow::bail!("{max} requests were never rate-limited")
}

async fn websocket_handshakes_are_rate_limited_per_user_and_address(
    backend: Backend,
) -> anyhow::Result<()> {
    // No socket cap in the way: only the handshake budget refuses.
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limits = true;
        c.max_sockets_per_user = 1000;
    })
    .await?;
    let (ann, bob) = (app.register("ann").await?, app.register("bob").await?);
    let bearer = format!("Bearer {}", ann.access_token);
    // Real handshakes use up Ann's budget; then she is refused before the upgrade, with
    // a problem body and Retry-After like any other 429.
    let mut sockets = Vec::new();
    let mut refused = None;
    for _ in 0..WS_HANDSHAKE_USER.burst as usize + 10 {
        match app.ws("/ws", &ann.access_token).await {
            Ok(socket) => sockets.push(socket),
            Err(err) => {
                refused = Some(err.to_string());
                break;
            }
        }
    }
    assert_eq!(refused.as_deref(), Some("handshake refused with 429"));
    assert!(sockets.len() >= WS_HANDSHAKE_USER.burst as usize);
    // Every handshake from this address counted, the refused ones too.
    let mut from_here = sockets.len() + 1;
    let refusal = app
        .request_with_headers(
            actix_web::http::Method::GET,
            "/ws",
            None,
            &[
                ("Authorization", &bearer),
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            None,
        )
        .await?;
    expect_limited(&refusal)?;
    drop(sockets);
    // Bob has a budget of his own.
    app.ws("/ws", &bob.access_token).await?;
    from_here += 2;
    // Per address, counted before authentication: handshakes with no credentials are
    // refused (401) until the address's budget is gone; then everyone from it waits.
    until_limited(
        WS_HANDSHAKE_ADDRESS.burst - from_here as f64,
        300,
        401,
        |_| app.get("/ws", None),
    )
    .await?;
    assert_eq!(
        app.ws_refused(
            "/ws",
            &[("Authorization", &format!("Bearer {}", bob.access_token))]
        )
        .await?,
        429
    );
    app.shutdown().await;
    Ok(())
}

async fn ws_tickets_and_message_edits_are_rate_limited_per_user(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.rate_limits = true).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    until_limited(WS_TICKET.burst, 100, 200, |_| {
        app.post("/api/v1/ws/ticket", Some(&ann.access_token), json!({}))
    })
    .await?;
    app.post("/api/v1/ws/ticket", Some(&bob.access_token), json!({}))
        .await?
        .expect_status(200)?;
    // Edits, over REST and WebSocket together.
    let sent = app
        .post(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&ann.access_token),
            json!({"content": "first"}),
        )
        .await?;
    sent.expect_status(201)?;
    let message = sent.json["id"].as_i64().unwrap_or_default();
    let path = format!("/api/v1/chats/{chat}/messages/{message}");
    until_limited(MESSAGE_EDIT.burst, 100, 200, |i| {
        app.patch(
            &path,
            Some(&ann.access_token),
            json!({"content": format!("edit {i}")}),
        )
    })
    .await?;
    let mut socket = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    socket
        .send(json!({"action": "edit_message", "message_id": message, "message": "again", "request_id": "e1"}))
        .await?;
    let error = socket.recv_type("error").await?;
    assert_eq!(
        (error["code"].as_str(), error["request_id"].as_str()),
        (Some("rate_limited"), Some("e1"))
    );
    // The socket stays open.
    socket.send(json!({"action": "ping"})).await?;
    socket.recv_type("pong").await?;
    app.shutdown().await;
    Ok(())
}

async fn friend_requests_are_rate_limited_and_a_declined_sender_waits(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.rate_limits = true).await?;
    let (ann, bob, cat) = (
        app.register("ann").await?,
        app.register("bob").await?,
        app.register("cat").await?,
    );
    let mut bobs = app.ws("/ws", &bob.access_token).await?;
    let asked = ask(&app, &ann, &bob).await?;
    asked.expect_status(201)?;
    let request = asked.json["id"].as_i64().unwrap_or_default();
    assert_eq!(
        bobs.recv_type("notification").await?["kind"],
        "friend_request"
    );
    // Asking again while it is pending changes nothing and notifies nobody: the next
    // notification Bob gets is the one Dan's request publishes after it.
    let dan = app.register("dan").await?;
    ask(&app, &ann, &bob).await?.expect_status(200)?;
    ask(&app, &dan, &bob).await?.expect_status(201)?;
    assert_eq!(
        bobs.recv_type("notification").await?["from_user_id"],
        dan.user_id
    );
    app.post(
        &format!("/api/v1/friends/requests/{request}/decline"),
        Some(&bob.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    // The declined sender waits before asking again, and Bob hears nothing: the next
    // notification he gets is Eve's, asked after.
    ask(&app, &ann, &bob)
        .await?
        .expect_problem(409, "recently_declined")?;
    let eve = app.register("eve").await?;
    ask(&app, &eve, &bob).await?.expect_status(201)?;
    assert_eq!(
        bobs.recv_type("notification").await?["from_user_id"],
        eve.user_id
    );
    // Once the cooldown is over (the decline moved back in time) Ann may ask again.
    let long_ago = chat_db::now() - chat_services::friends::DECLINED_COOLDOWN * 2;
    chat_db::models::FriendshipRow::transition(
        &app.context.store.db,
        request,
        "declined",
        "declined",
        ann.user_id,
        long_ago,
    )
    .await?;
    ask(&app, &ann, &bob).await?.expect_status(201)?;
    assert_eq!(
        bobs.recv_type("notification").await?["kind"],
        "friend_request"
    );
    // Who declined may change their mind at once.
    let from_cat = ask(&app, &cat, &ann).await?;
    app.post(
        &format!("/api/v1/friends/requests/{}/decline", from_cat.json["id"]),
        Some(&ann.access_token),
        json!({}),
    )
    .await?
    .expect_status(200)?;
    ask(&app, &ann, &cat).await?.expect_status(201)?;
    // Ann has asked 5 times so far: repeats and refusals count too.
    until_limited(FRIEND_REQUEST.burst - 5.0, 100, 200, |_| {
        ask(&app, &ann, &cat)
    })
    .await?;
    // Bob has a budget of his own.
    ask(&app, &bob, &cat).await?.expect_status(201)?;
    app.shutdown().await;
    Ok(())
}

/// `who` asks `whom` to be friends.
async fn ask(app: &TestApp, who: &Session, whom: &Session) -> anyhow::Result<Response> {
    app.post(
        "/api/v1/friends/requests",
        Some(&who.access_token),
        json!({"user_id": whom.user_id}),
    )
    .await
}
