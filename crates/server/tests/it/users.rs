//! My account and the user directory — through the real server, both modes.

use chat_test_support::{Backend, TEST_PASSWORD, TestApp, both_backends};
use serde_json::json;

both_backends!(
    me_shows_private_fields_and_update_changes_the_display_name,
    update_me_validates_its_fields,
    password_change_needs_the_old_password_and_ends_other_sessions,
    directory_search_pages_through_everyone_once,
    directory_refuses_bad_limits_cursors_and_anonymous_callers,
    public_profiles_hide_private_fields,
);

async fn me_shows_private_fields_and_update_changes_the_display_name(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let ann = app.register("ann").await?;
    let me = app.get("/api/v1/users/me", Some(&ann.access_token)).await?;
    me.expect_status(200)?;
    assert_eq!(me.json["email"], "ann@example.com");
    assert_eq!(me.json["is_active"], true);
    assert!(
        me.json["last_seen_at"].is_string(),
        "sign-up is activity: {}",
        me.text
    );
    let updated = app
        .patch(
            "/api/v1/users/me",
            Some(&ann.access_token),
            json!({"display_name": "  Ann Arbor "}),
        )
        .await?;
    updated.expect_status(200)?;
    assert_eq!(updated.json["display_name"], "Ann Arbor");
    let me = app.get("/api/v1/users/me", Some(&ann.access_token)).await?;
    assert_eq!(me.json["display_name"], "Ann Arbor");
    // An empty patch changes nothing.
    let same = app
        .patch("/api/v1/users/me", Some(&ann.access_token), json!({}))
        .await?;
    same.expect_status(200)?;
    assert_eq!(same.json["display_name"], "Ann Arbor");
    app.patch("/api/v1/users/me", None, json!({"display_name": "x"}))
        .await?
        .expect_problem(401, "missing_token")?;
    app.shutdown().await;
    Ok(())
}

async fn update_me_validates_its_fields(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let ben = app.register("ben").await?;
    let token = Some(ben.access_token.as_str());
    let blank = app
        .patch("/api/v1/users/me", token, json!({"display_name": "   "}))
        .await?;
    blank.expect_problem(422, "validation_failed")?;
    assert!(blank.json["errors"]["display_name"].is_array());
    let long = app
        .patch(
            "/api/v1/users/me",
            token,
            json!({"display_name": "x".repeat(65)}),
        )
        .await?;
    long.expect_problem(422, "validation_failed")?;
    let unknown = app
        .patch("/api/v1/users/me", token, json!({"is_admin": true}))
        .await?;
    unknown.expect_problem(422, "validation_failed")?;
    assert!(
        unknown.json["errors"]["is_admin"].is_array(),
        "{}",
        unknown.text
    );
    app.request(
        actix_web::http::Method::PATCH,
        "/api/v1/users/me",
        token,
        Some(("application/json", b"{".to_vec())),
    )
    .await?
    .expect_problem(400, "malformed_json")?;
    let me = app.get("/api/v1/users/me", token).await?;
    assert_eq!(
        (
            me.json["display_name"].as_str(),
            me.json["is_admin"].as_bool()
        ),
        (Some("ben"), Some(false))
    );
    app.shutdown().await;
    Ok(())
}

async fn password_change_needs_the_old_password_and_ends_other_sessions(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let here = app.register("cleo").await?;
    let elsewhere = app.login("cleo", TEST_PASSWORD).await?;
    let token = Some(here.access_token.as_str());
    let no_old = app
        .patch(
            "/api/v1/users/me",
            token,
            json!({"new_password": "a brand new one"}),
        )
        .await?;
    no_old.expect_problem(422, "validation_failed")?;
    assert!(no_old.json["errors"]["old_password"].is_array());
    let wrong_old = app
        .patch(
            "/api/v1/users/me",
            token,
            json!({"old_password": "not it at all", "new_password": "a brand new one"}),
        )
        .await?;
    wrong_old.expect_problem(422, "validation_failed")?;
    assert!(wrong_old.json["errors"]["old_password"].is_array());
    let weak = app
        .patch(
            "/api/v1/users/me",
            token,
            json!({"old_password": TEST_PASSWORD, "new_password": "short"}),
        )
        .await?;
    weak.expect_problem(422, "validation_failed")?;
    assert!(weak.json["errors"]["new_password"].is_array());
    // Nothing changed so far: the other session is still alive.
    app.get("/api/v1/users/me", Some(&elsewhere.access_token))
        .await?
        .expect_status(200)?;
    app.patch(
        "/api/v1/users/me",
        token,
        json!({"current_password": TEST_PASSWORD, "new_password": "a brand new one"}),
    )
    .await?
    .expect_status(200)?;
    app.get("/api/v1/users/me", token)
        .await?
        .expect_status(200)?;
    app.get("/api/v1/users/me", Some(&elsewhere.access_token))
        .await?
        .expect_problem(401, "session_revoked")?;
    app.refresh(&elsewhere.refresh_token)
        .await?
        .expect_problem(401, "session_revoked")?;
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"username": "cleo", "password": TEST_PASSWORD}),
    )
    .await?
    .expect_problem(401, "invalid_credentials")?;
    app.login("cleo", "a brand new one").await?;
    app.shutdown().await;
    Ok(())
}

async fn directory_search_pages_through_everyone_once(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let me = app.register("dora").await?;
    for name in ["zed", "Yara", "xavier", "wendy", "victor_1", "victor_2"] {
        app.register(name).await?;
    }
    let token = Some(me.access_token.as_str());
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit=3&cursor={c}"),
            None => "/api/v1/users?limit=3".to_owned(),
        };
        let page = app.get(&path, token).await?;
        page.expect_status(200)?;
        let items = page.json["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .filter_map(|u| u["username"].as_str().map(str::to_owned)),
        );
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "dora", "victor_1", "victor_2", "wendy", "xavier", "Yara", "zed"
        ]
    );
    let victors = app.get("/api/v1/users?q=VICTOR", token).await?;
    let names: Vec<_> = victors.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["victor_1", "victor_2"]);
    assert!(victors.json["next_cursor"].is_null());
    // LIKE wildcards in the query are literal characters.
    let underscore = app.get("/api/v1/users?q=r_", token).await?;
    let names: Vec<_> = underscore.json["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["victor_1", "victor_2"]);
    let percent = app.get("/api/v1/users?q=%25", token).await?;
    assert_eq!(percent.json["items"].as_array().map(Vec::len), Some(0));
    // Display names match too.
    app.patch(
        "/api/v1/users/me",
        token,
        json!({"display_name": "The Explorer"}),
    )
    .await?
    .expect_status(200)?;
    let explorer = app.get("/api/v1/users?q=explorer", token).await?;
    assert_eq!(explorer.json["items"][0]["username"], "dora");
    app.shutdown().await;
    Ok(())
}

async fn directory_refuses_bad_limits_cursors_and_anonymous_callers(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let eve = app.register("eve").await?;
    let token = Some(eve.access_token.as_str());
    for path in [
        "/api/v1/users?limit=0",
        "/api/v1/users?limit=201",
        "/api/v1/users?limit=abc",
        "/api/v1/users?cursor=!!!",
    ] {
        let response = app.get(path, token).await?;
        response.expect_problem(422, "validation_failed")?;
    }
    app.get("/api/v1/users?q=a%00b", token)
        .await?
        .expect_problem(422, "validation_failed")?;
    let long_query = format!("/api/v1/users?q={}", "a".repeat(65));
    app.get(&long_query, token)
        .await?
        .expect_problem(422, "validation_failed")?;
    app.get("/api/v1/users?limit=200", token)
        .await?
        .expect_status(200)?;
    app.get("/api/v1/users", None)
        .await?
        .expect_problem(401, "missing_token")?;
    app.shutdown().await;
    Ok(())
}

async fn public_profiles_hide_private_fields(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let fay = app.register("fay").await?;
    let gus = app.register("gus").await?;
    let profile = app
        .get(
            &format!("/api/v1/users/{}", gus.user_id),
            Some(&fay.access_token),
        )
        .await?;
    profile.expect_status(200)?;
    assert_eq!(profile.json["username"], "gus");
    for private in ["email", "is_admin", "is_active", "password_hash"] {
        assert!(
            profile.json.get(private).is_none(),
            "{private} leaked: {}",
            profile.text
        );
    }
    app.get("/api/v1/users/999999", Some(&fay.access_token))
        .await?
        .expect_problem(404, "not_found")?;
    app.get("/api/v1/users/abc", Some(&fay.access_token))
        .await?
        .expect_problem(404, "not_found")?;
    app.get(&format!("/api/v1/users/{}", gus.user_id), None)
        .await?
        .expect_problem(401, "missing_token")?;
    app.shutdown().await;
    Ok(())
}
