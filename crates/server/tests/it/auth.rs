//! Sign-up, log-in, refresh rotation, log-out — through the real server, both modes.

use chat_domain::UserId;
use chat_services::auth::tokens::{JwtKeys, issue_access};
use chat_test_support::{Backend, TEST_JWT_SECRET, TEST_PASSWORD, TestApp, both_backends};
use serde_json::json;

both_backends!(
    register_returns_a_working_token_pair,
    register_refuses_taken_usernames_and_emails_case_insensitively,
    register_reports_every_invalid_field,
    register_refuses_malformed_and_oversize_bodies,
    concurrent_registrations_of_one_name_create_one_account,
    login_by_username_or_email_in_any_case,
    login_failures_do_not_reveal_whether_the_user_exists,
    login_accepts_the_oauth2_password_form,
    login_requires_both_fields,
    deactivated_accounts_cannot_log_in,
    login_and_register_are_rate_limited_per_address,
    bad_and_missing_tokens_are_refused,
    expired_and_forged_tokens_are_refused,
    refresh_rotates_and_reuse_ends_the_session,
    concurrent_refreshes_with_one_token_end_the_session,
    refresh_refuses_garbage_and_ended_sessions,
    logout_revokes_the_session_at_once_and_only_that_one,
    logout_publishes_a_session_revoked_event,
);

async fn register_returns_a_working_token_pair(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let response = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "Alice", "email": "Alice@Example.com", "password": TEST_PASSWORD, "display_name": "  Alice A.  "}),
        )
        .await?;
    response.expect_status(201)?;
    let body = &response.json;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"]["username"], "Alice");
    assert_eq!(body["user"]["email"], "alice@example.com");
    assert_eq!(body["user"]["display_name"], "Alice A.");
    assert_eq!(body["user"]["is_admin"], false);
    assert!(body["user"].get("password_hash").is_none() && !response.text.contains("$2b$"));
    let token = body["access_token"].as_str().unwrap_or_default();
    let me = app.get("/api/v1/users/me", Some(token)).await?;
    me.expect_status(200)?;
    assert_eq!(me.json["id"], body["user"]["id"]);
    // The display name defaults to the username.
    let bob = app.register("bob").await?;
    let me = app.get("/api/v1/users/me", Some(&bob.access_token)).await?;
    assert_eq!(me.json["display_name"], "bob");
    app.shutdown().await;
    Ok(())
}

async fn register_refuses_taken_usernames_and_emails_case_insensitively(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.register("carol").await?;
    let same_name = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "CAROL", "email": "other@example.com", "password": TEST_PASSWORD}),
        )
        .await?;
    same_name.expect_problem(409, "username_taken")?;
    let same_email = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "carol2", "email": "Carol@EXAMPLE.com", "password": TEST_PASSWORD}),
        )
        .await?;
    same_email.expect_problem(409, "email_taken")?;
    app.shutdown().await;
    Ok(())
}

async fn register_reports_every_invalid_field(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let response = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "x!", "email": "not-an-email", "password": "short", "display_name": " "}),
        )
        .await?;
    response.expect_problem(422, "validation_failed")?;
    let errors = &response.json["errors"];
    for field in ["username", "email", "password", "display_name"] {
        assert!(
            errors[field].as_array().is_some_and(|m| !m.is_empty()),
            "no message for {field}: {}",
            response.text
        );
    }
    let too_long = app
        .post("/api/v1/auth/register", None, json!({"username": "y".repeat(33), "email": "y@example.com", "password": "p".repeat(73)}))
        .await?;
    too_long.expect_problem(422, "validation_failed")?;
    assert!(
        too_long.json["errors"]["username"].is_array()
            && too_long.json["errors"]["password"].is_array()
    );
    // Missing fields and wrong types are 422 naming the field.
    let missing = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "dave", "email": "d@example.com"}),
        )
        .await?;
    missing.expect_problem(422, "validation_failed")?;
    assert!(
        missing.json["errors"]["password"].is_array(),
        "{}",
        missing.text
    );
    let wrong_type = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": 5, "email": "d@example.com", "password": "x"}),
        )
        .await?;
    wrong_type.expect_problem(422, "validation_failed")?;
    // Nothing was stored.
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "dave", "password": TEST_PASSWORD}),
        )
        .await?;
    login.expect_problem(401, "invalid_credentials")?;
    app.shutdown().await;
    Ok(())
}

async fn register_refuses_malformed_and_oversize_bodies(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.post_raw(
        "/api/v1/auth/register",
        "application/json",
        "{\"username\": ",
    )
    .await?
    .expect_problem(400, "malformed_json")?;
    app.post_raw("/api/v1/auth/register", "application/json", "")
        .await?
        .expect_problem(400, "malformed_json")?;
    app.post_raw("/api/v1/auth/register", "text/plain", "hello")
        .await?
        .expect_problem(415, "unsupported_media_type")?;
    let huge = format!("{{\"username\": \"{}\"}}", "a".repeat(70 * 1024));
    app.post_raw("/api/v1/auth/register", "application/json", huge.clone())
        .await?
        .expect_problem(413, "payload_too_large")?;
    app.post_raw("/api/v1/auth/login", "application/json", huge)
        .await?
        .expect_problem(413, "payload_too_large")?;
    app.post_raw("/api/v1/auth/login", "application/json", "[1,2")
        .await?
        .expect_problem(400, "malformed_json")?;
    // The server is still healthy.
    app.register("erin").await?;
    app.shutdown().await;
    Ok(())
}

async fn concurrent_registrations_of_one_name_create_one_account(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let attempts = (0..8).map(|i| {
        app.post(
            "/api/v1/auth/register",
            None,
            json!({"username": if i % 2 == 0 { "Frank" } else { "frank" }, "email": format!("frank{i}@example.com"), "password": TEST_PASSWORD}),
        )
    });
    let responses = futures_util::future::join_all(attempts).await;
    let mut created = 0;
    for response in responses {
        let response = response?;
        match response.status.as_u16() {
            201 => created += 1,
            _ => response.expect_problem(409, "username_taken")?,
        }
    }
    assert_eq!(created, 1);
    app.shutdown().await;
    Ok(())
}

async fn login_by_username_or_email_in_any_case(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let grace = app.register("Grace").await?;
    for login in [
        "Grace",
        "grace",
        "GRACE",
        "grace@example.com",
        "GRACE@EXAMPLE.COM",
    ] {
        let session = app.login(login, TEST_PASSWORD).await?;
        assert_eq!(session.user_id, grace.user_id);
    }
    for body in [
        json!({"email": "grace@example.com", "password": TEST_PASSWORD}),
        json!({"login": "grace", "password": TEST_PASSWORD}),
    ] {
        app.post("/api/v1/auth/login", None, body)
            .await?
            .expect_status(200)?;
    }
    app.shutdown().await;
    Ok(())
}

async fn login_failures_do_not_reveal_whether_the_user_exists(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.register("heidi").await?;
    let wrong_password = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "heidi", "password": "wrong password"}),
        )
        .await?;
    let unknown_user = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "nobody", "password": "wrong password"}),
        )
        .await?;
    wrong_password.expect_problem(401, "invalid_credentials")?;
    unknown_user.expect_problem(401, "invalid_credentials")?;
    assert_eq!(wrong_password.json, unknown_user.json);
    assert_eq!(wrong_password.header("www-authenticate"), Some("Bearer"));
    app.shutdown().await;
    Ok(())
}

async fn login_accepts_the_oauth2_password_form(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let ivan = app.register("ivan").await?;
    let form =
        "grant_type=password&username=ivan&password=correct+horse+battery&scope=&client_id=swagger";
    let response = app
        .post_raw(
            "/api/v1/auth/login",
            "application/x-www-form-urlencoded",
            form,
        )
        .await?;
    response.expect_status(200)?;
    assert_eq!(response.json["user"]["id"], ivan.user_id);
    assert_eq!(response.json["token_type"], "Bearer");
    let wrong_grant = app
        .post_raw(
            "/api/v1/auth/login",
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&username=ivan&password=x",
        )
        .await?;
    wrong_grant.expect_problem(400, "unsupported_grant_type")?;
    let missing = app
        .post_raw(
            "/api/v1/auth/login",
            "application/x-www-form-urlencoded",
            "username=ivan",
        )
        .await?;
    missing.expect_problem(422, "validation_failed")?;
    let bad_password = app
        .post_raw(
            "/api/v1/auth/login",
            "application/x-www-form-urlencoded",
            "username=ivan&password=nope",
        )
        .await?;
    bad_password.expect_problem(401, "invalid_credentials")?;
    app.shutdown().await;
    Ok(())
}

async fn login_requires_both_fields(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    // A NUL byte must not reach PostgreSQL (which refuses it with an error).
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"username": "a\u{0}b", "password": "whatever"}),
    )
    .await?
    .expect_problem(422, "validation_failed")?;
    let response = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": " ", "password": ""}),
        )
        .await?;
    response.expect_problem(422, "validation_failed")?;
    assert!(
        response.json["errors"]["username"].is_array()
            && response.json["errors"]["password"].is_array()
    );
    app.post("/api/v1/auth/login", None, json!({"username": "x"}))
        .await?
        .expect_problem(422, "validation_failed")?;
    app.shutdown().await;
    Ok(())
}

async fn deactivated_accounts_cannot_log_in(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let judy = app.register("judy").await?;
    let changes = chat_db::models::UserChanges {
        is_active: Some(false),
        ..Default::default()
    };
    chat_db::models::UserRow::update(&app.context.store.db, judy.user_id, changes).await?;
    chat_services::auth::revoke_user_sessions(&app.context, UserId(judy.user_id), None).await?;
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"username": "judy", "password": TEST_PASSWORD}),
    )
    .await?
    .expect_problem(403, "account_disabled")?;
    // A wrong password still gets the generic answer.
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"username": "judy", "password": "wrong password"}),
    )
    .await?
    .expect_problem(401, "invalid_credentials")?;
    app.get("/api/v1/users/me", Some(&judy.access_token))
        .await?
        .expect_problem(401, "session_revoked")?;
    app.refresh(&judy.refresh_token)
        .await?
        .expect_problem(401, "session_revoked")?;
    app.shutdown().await;
    Ok(())
}

async fn login_and_register_are_rate_limited_per_address(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn_with(backend, |c| c.rate_limits = true).await?;
    app.register("mallory").await?;
    let mut limited = None;
    for _ in 0..30 {
        let response = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"username": "mallory", "password": "guess guess"}),
            )
            .await?;
        if response.status.as_u16() == 429 {
            limited = Some(response);
            break;
        }
        response.expect_problem(401, "invalid_credentials")?;
    }
    let limited =
        limited.ok_or_else(|| anyhow::anyhow!("30 failed logins were never rate-limited"))?;
    limited.expect_problem(429, "rate_limited")?;
    assert!(
        limited
            .header("retry-after")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|s| s >= 1)
    );
    let mut register_limited = false;
    for i in 0..15 {
        let response = app
            .post("/api/v1/auth/register", None, json!({"username": format!("bulk{i}"), "email": format!("bulk{i}@example.com"), "password": TEST_PASSWORD}))
            .await?;
        if response.status.as_u16() == 429 {
            register_limited = true;
            break;
        }
        response.expect_status(201)?;
    }
    assert!(
        register_limited,
        "15 sign-ups from one address were never rate-limited"
    );
    app.shutdown().await;
    Ok(())
}

async fn bad_and_missing_tokens_are_refused(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.get("/api/v1/users/me", None)
        .await?
        .expect_problem(401, "missing_token")?;
    app.get("/api/v1/users/me", Some("garbage"))
        .await?
        .expect_problem(401, "invalid_token")?;
    let response = app
        .request(actix_web::http::Method::GET, "/api/v1/users/me", None, None)
        .await?;
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    // A refresh token is not an access token.
    let kim = app.register("kim").await?;
    app.get("/api/v1/users/me", Some(&kim.refresh_token))
        .await?
        .expect_problem(401, "invalid_token")?;
    app.shutdown().await;
    Ok(())
}

async fn expired_and_forged_tokens_are_refused(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let leo = app.register("leo").await?;
    let claims = chat_services::auth::tokens::verify_access(
        &JwtKeys::from_secret(TEST_JWT_SECRET.as_bytes()),
        &leo.access_token,
    )?;
    let now = chrono_now();
    let expired = issue_access(
        &JwtKeys::from_secret(TEST_JWT_SECRET.as_bytes()),
        UserId(leo.user_id),
        &claims.sid,
        now - 3600,
        now - 5,
    )?;
    app.get("/api/v1/users/me", Some(&expired))
        .await?
        .expect_problem(401, "token_expired")?;
    let forged = issue_access(
        &JwtKeys::from_secret(b"someone else's secret, 32 bytes+"),
        UserId(leo.user_id),
        &claims.sid,
        now,
        now + 600,
    )?;
    app.get("/api/v1/users/me", Some(&forged))
        .await?
        .expect_problem(401, "invalid_token")?;
    // A valid signature for another user's id with this session does not pass either.
    let swapped = issue_access(
        &JwtKeys::from_secret(TEST_JWT_SECRET.as_bytes()),
        UserId(leo.user_id + 1),
        &claims.sid,
        now,
        now + 600,
    )?;
    app.get("/api/v1/users/me", Some(&swapped))
        .await?
        .expect_problem(401, "session_revoked")?;
    app.shutdown().await;
    Ok(())
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

async fn refresh_rotates_and_reuse_ends_the_session(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let mia = app.register("mia").await?;
    let first = app.refresh(&mia.refresh_token).await?;
    first.expect_status(200)?;
    let rotated = TestApp::session_of(&first)?;
    assert_ne!(rotated.refresh_token, mia.refresh_token);
    assert_eq!(rotated.user_id, mia.user_id);
    app.get("/api/v1/users/me", Some(&rotated.access_token))
        .await?
        .expect_status(200)?;
    // Same session, so the first access token still works until reuse is detected.
    app.get("/api/v1/users/me", Some(&mia.access_token))
        .await?
        .expect_status(200)?;
    let second = app.refresh(&rotated.refresh_token).await?;
    second.expect_status(200)?;
    let latest = TestApp::session_of(&second)?;
    // Replaying a retired refresh token ends the whole session …
    app.refresh(&mia.refresh_token)
        .await?
        .expect_problem(401, "refresh_token_reused")?;
    // … so neither the latest access token nor the latest refresh token works any more.
    app.get("/api/v1/users/me", Some(&latest.access_token))
        .await?
        .expect_problem(401, "session_revoked")?;
    app.refresh(&latest.refresh_token)
        .await?
        .expect_problem(401, "session_revoked")?;
    // Logging in again opens a fresh session.
    let again = app.login("mia", chat_test_support::TEST_PASSWORD).await?;
    app.get("/api/v1/users/me", Some(&again.access_token))
        .await?
        .expect_status(200)?;
    app.shutdown().await;
    Ok(())
}

async fn concurrent_refreshes_with_one_token_end_the_session(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let nina = app.register("nina").await?;
    let responses =
        futures_util::future::join_all((0..4).map(|_| app.refresh(&nina.refresh_token))).await;
    let mut winners = Vec::new();
    for response in responses {
        let response = response?;
        if response.status.as_u16() == 200 {
            winners.push(TestApp::session_of(&response)?);
        } else {
            assert_eq!(response.status.as_u16(), 401, "{}", response.text);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "one refresh token must be exchanged exactly once"
    );
    // Using one token several times is reuse: the session is over for everyone.
    app.get("/api/v1/users/me", Some(&nina.access_token))
        .await?
        .expect_problem(401, "session_revoked")?;
    for winner in winners {
        app.get("/api/v1/users/me", Some(&winner.access_token))
            .await?
            .expect_problem(401, "session_revoked")?;
    }
    app.shutdown().await;
    Ok(())
}

async fn refresh_refuses_garbage_and_ended_sessions(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.refresh("garbage")
        .await?
        .expect_problem(401, "invalid_token")?;
    app.refresh("abc.def")
        .await?
        .expect_problem(401, "invalid_token")?;
    app.post("/api/v1/auth/refresh", None, json!({}))
        .await?
        .expect_problem(422, "validation_failed")?;
    let oscar = app.register("oscar").await?;
    let sid = oscar.refresh_token.split('.').next().unwrap_or_default();
    // Knowing a session id (it is in every access token) does not let anyone end the
    // session: forged tokens of any generation are merely invalid.
    for forged in [
        format!("{sid}.0.forged"),
        format!("{sid}.1.forged"),
        format!("{sid}.0"),
    ] {
        app.refresh(&forged)
            .await?
            .expect_problem(401, "invalid_token")?;
    }
    app.get("/api/v1/users/me", Some(&oscar.access_token))
        .await?
        .expect_status(200)?;
    app.refresh(&oscar.refresh_token)
        .await?
        .expect_status(200)?;
    app.refresh("abc\u{0}.1.x")
        .await?
        .expect_problem(401, "invalid_token")?;
    let other = app.register("oscar2").await?;
    app.post("/api/v1/auth/logout", Some(&other.access_token), json!({}))
        .await?
        .expect_status(204)?;
    app.refresh(&other.refresh_token)
        .await?
        .expect_problem(401, "session_revoked")?;
    app.shutdown().await;
    Ok(())
}

async fn logout_revokes_the_session_at_once_and_only_that_one(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let phone = app.register("peggy").await?;
    let laptop = app.login("peggy", TEST_PASSWORD).await?;
    // Warm the session cache so logout must invalidate it, not just miss it.
    app.get("/api/v1/users/me", Some(&phone.access_token))
        .await?
        .expect_status(200)?;
    app.request(
        actix_web::http::Method::POST,
        "/api/v1/auth/logout",
        Some(&phone.access_token),
        None,
    )
    .await?
    .expect_status(204)?;
    app.get("/api/v1/users/me", Some(&phone.access_token))
        .await?
        .expect_problem(401, "session_revoked")?;
    app.request(
        actix_web::http::Method::POST,
        "/api/v1/auth/logout",
        Some(&phone.access_token),
        None,
    )
    .await?
    .expect_problem(401, "session_revoked")?;
    app.get("/api/v1/users/me", Some(&laptop.access_token))
        .await?
        .expect_status(200)?;
    app.request(
        actix_web::http::Method::POST,
        "/api/v1/auth/logout",
        None,
        None,
    )
    .await?
    .expect_problem(401, "missing_token")?;
    app.shutdown().await;
    Ok(())
}

async fn logout_publishes_a_session_revoked_event(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let quinn = app.register("quinn").await?;
    let mut events = app.context.bus.subscribe();
    chat_test_support::follow_topics(
        &app.context.bus,
        &mut events,
        &[format!("user.{}", quinn.user_id)],
    )
    .await?;
    app.request(
        actix_web::http::Method::POST,
        "/api/v1/auth/logout",
        Some(&quinn.access_token),
        None,
    )
    .await?
    .expect_status(204)?;
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv()).await??;
    assert_eq!(event.topic, format!("user.{}", quinn.user_id));
    let payload: serde_json::Value = serde_json::from_str(&event.payload)?;
    assert_eq!(payload["type"], "session.revoked");
    assert_eq!(payload["user_id"], quinn.user_id);
    app.shutdown().await;
    Ok(())
}
