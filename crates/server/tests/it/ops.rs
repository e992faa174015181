//! Operations endpoints, API documentation and the error shape of the HTTP layer.

use chat_test_support::{Backend, TestApp, both_backends};
use serde_json::json;

both_backends!(
    health_and_readiness_answer,
    metrics_count_requests_by_route_pattern,
    metrics_count_what_the_message_writers_stored,
    unknown_routes_and_wrong_methods_are_problems,
    every_response_carries_a_request_id,
    metrics_show_sockets_deliveries_the_pool_and_redis,
);

async fn health_and_readiness_answer(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let health = app.get("/healthz", None).await?;
    health.expect_status(200)?;
    assert_eq!(health.json["status"], "ok");
    let ready = app.get("/readyz", None).await?;
    ready.expect_status(200)?;
    assert_eq!(
        (
            ready.json["database"].as_str(),
            ready.json["cache"].as_str()
        ),
        (Some("ok"), Some("ok"))
    );
    app.shutdown().await;
    Ok(())
}

async fn metrics_count_requests_by_route_pattern(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let amy = app.register("amy").await?;
    for _ in 0..3 {
        app.get(
            &format!("/api/v1/users/{}", amy.user_id),
            Some(&amy.access_token),
        )
        .await?
        .expect_status(200)?;
    }
    app.get("/api/v1/users/424242", Some(&amy.access_token))
        .await?
        .expect_status(404)?;
    let metrics = app.get("/metrics", None).await?;
    metrics.expect_status(200)?;
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    let text = &metrics.text;
    assert!(text.contains("# TYPE http_requests_total counter"));
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/api/v1/users/{user_id}",status="200"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_requests_total{method="GET",route="/api/v1/users/{user_id}",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_requests_total{method="POST",route="/api/v1/auth/register",status="201"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_request_duration_seconds_count{method="GET",route="/api/v1/users/{user_id}"} 4"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"le="+Inf""#));
    app.shutdown().await;
    Ok(())
}

/// The value of an unlabelled series in a Prometheus text page.
fn series(text: &str, name: &str) -> anyhow::Result<f64> {
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .ok_or_else(|| anyhow::anyhow!("no {name} in {text}"))?;
    let value = line.split_whitespace().nth(1).unwrap_or_default();
    Ok(value.parse()?)
}

async fn metrics_count_what_the_message_writers_stored(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let before = app.get("/metrics", None).await?;
    before.expect_status(200)?;
    assert_eq!(series(&before.text, "chat_messages_stored_total")?, 0.0);
    assert_eq!(series(&before.text, "chat_message_batches_total")?, 0.0);
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let path = format!("/api/v1/chats/{chat}/messages");
    for n in 0..4 {
        app.post(
            &path,
            Some(&ann.access_token),
            json!({"content": format!("m{n}")}),
        )
        .await?
        .expect_status(201)?;
    }
    // A resend of a client_id stores nothing new.
    for expected in [201, 200] {
        app.post(
            &path,
            Some(&ann.access_token),
            json!({"content": "once", "client_id": "k-1"}),
        )
        .await?
        .expect_status(expected)?;
    }
    let text = app.get("/metrics", None).await?.text;
    assert_eq!(series(&text, "chat_messages_stored_total")?, 5.0, "{text}");
    let batches = series(&text, "chat_message_batches_total")?;
    // Sent one after another: each its own batch (the resend's batch stores nothing).
    assert_eq!(batches, 6.0, "{text}");
    assert_eq!(series(&text, "chat_message_batches_failed_total")?, 0.0);
    assert!(
        series(&text, "chat_message_batch_seconds_total")? > 0.0,
        "{text}"
    );
    // In-process publishing can take under the microsecond the counter resolves:
    // only its presence is certain.
    series(&text, "chat_message_publish_seconds_total")?;
    app.shutdown().await;
    Ok(())
}

async fn unknown_routes_and_wrong_methods_are_problems(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    app.get("/api/v1/nothing-here", None)
        .await?
        .expect_problem(404, "not_found")?;
    app.get("/definitely/not/here", None)
        .await?
        .expect_problem(404, "not_found")?;
    let wrong_method = app.delete("/api/v1/users/me", None).await?;
    wrong_method.expect_problem(405, "method_not_allowed")?;
    assert!(
        wrong_method
            .header("allow")
            .is_some_and(|a| a.contains("GET") && a.contains("PATCH"))
    );
    app.get("/api/v1/auth/login", None)
        .await?
        .expect_problem(405, "method_not_allowed")?;
    app.post("/healthz", None, json!({}))
        .await?
        .expect_problem(405, "method_not_allowed")?;
    app.shutdown().await;
    Ok(())
}

async fn every_response_carries_a_request_id(backend: Backend) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let ok = app.get("/healthz", None).await?;
    let err = app.get("/nope", None).await?;
    let (a, b) = (ok.header("x-request-id"), err.header("x-request-id"));
    assert!(a.is_some_and(|id| id.len() >= 16) && b.is_some_and(|id| id.len() >= 16));
    assert_ne!(a, b);
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn openapi_document_lists_every_endpoint_with_its_security() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let doc = app.get("/api/openapi.json", None).await?;
    doc.expect_status(200)?;
    let doc = doc.json;
    assert_eq!(doc["openapi"], "3.1.0");
    let expected = [
        ("/api/v1/auth/register", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/users/me", "get"),
        ("/api/v1/users/me", "patch"),
        ("/api/v1/users", "get"),
        ("/api/v1/users/{user_id}", "get"),
        ("/api/v1/users/{user_id}/block", "put"),
        ("/api/v1/users/{user_id}/block", "delete"),
        ("/api/v1/users/me/blocks", "get"),
        ("/api/v1/chats/{chat_id}/messages/search", "get"),
        ("/api/v1/search/messages", "get"),
        ("/api/v1/friends", "get"),
        ("/api/v1/friends/requests", "get"),
        ("/api/v1/friends/requests", "post"),
        ("/api/v1/friends/requests/{request_id}/accept", "post"),
        ("/api/v1/friends/requests/{request_id}/decline", "post"),
        ("/api/v1/friends/{user_id}", "delete"),
        ("/api/v1/chats", "get"),
        ("/api/v1/chats", "post"),
        ("/api/v1/chats/direct", "post"),
        ("/api/v1/chats/{chat_id}", "get"),
        ("/api/v1/chats/{chat_id}", "patch"),
        ("/api/v1/chats/{chat_id}", "delete"),
        ("/api/v1/chats/{chat_id}/join", "post"),
        ("/api/v1/chats/{chat_id}/leave", "post"),
        ("/api/v1/chats/{chat_id}/mute", "put"),
        ("/api/v1/chats/{chat_id}/mute", "delete"),
        ("/api/v1/groups", "get"),
        ("/api/v1/chats/{chat_id}/members", "get"),
        ("/api/v1/chats/{chat_id}/members/{user_id}", "put"),
        ("/api/v1/chats/{chat_id}/members/{user_id}", "patch"),
        ("/api/v1/chats/{chat_id}/members/{user_id}", "delete"),
        ("/api/v1/chats/{chat_id}/messages", "get"),
        ("/api/v1/chats/{chat_id}/messages", "post"),
        ("/api/v1/chats/{chat_id}/messages/{message_id}", "patch"),
        ("/api/v1/chats/{chat_id}/messages/{message_id}", "delete"),
        (
            "/api/v1/chats/{chat_id}/messages/{message_id}/reactions/{emoji}",
            "put",
        ),
        (
            "/api/v1/chats/{chat_id}/messages/{message_id}/reactions/{emoji}",
            "delete",
        ),
        ("/api/v1/chats/{chat_id}/attachments", "post"),
        ("/api/v1/attachments/{attachment_id}", "get"),
        ("/api/v1/chats/{chat_id}/read", "post"),
        ("/api/v1/admin/users", "get"),
        ("/api/v1/admin/users/{user_id}", "patch"),
        ("/api/v1/admin/chats", "get"),
        ("/api/v1/ws/ticket", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ];
    for (path, method) in expected {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        if secured {
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} lacks its 401"
            );
        }
    }
    let documented: usize = doc["paths"]
        .as_object()
        .map(|p| {
            p.values()
                .map(|ops| ops.as_object().map_or(0, |o| o.len()))
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(
        documented,
        expected.len(),
        "undocumented or unexpected operations"
    );
    assert!(doc["paths"]["/api/v1/users/me"]["get"]["security"].is_array());
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        schemes["oauth2"]["flows"]["password"]["tokenUrl"],
        "/api/v1/auth/login"
    );
    let login_body = &doc["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"];
    assert!(
        login_body["application/json"].is_object()
            && login_body["application/x-www-form-urlencoded"].is_object()
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn swagger_ui_is_served_from_the_binary() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Sqlite).await?;
    let redirect = app.get("/docs", None).await?;
    assert!(
        redirect.status.is_redirection() && redirect.header("location") == Some("/docs/"),
        "{redirect:?}"
    );
    let page = app.get("/docs/", None).await?;
    page.expect_status(200)?;
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    // Every asset the page names is served by us, not by a CDN.
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "external reference in {}",
        page.text
    );
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-initializer.js",
    ] {
        let response = app.get(&format!("/docs/{asset}"), None).await?;
        response.expect_status(200)?;
        assert!(response.text.len() > 100, "{asset} is empty");
    }
    let initializer = app.get("/docs/swagger-initializer.js", None).await?;
    assert!(
        initializer.text.contains("/api/openapi.json"),
        "{}",
        initializer.text
    );
    app.shutdown().await;
    Ok(())
}

async fn metrics_show_sockets_deliveries_the_pool_and_redis(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut ann_socket = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    let mut bob_socket = app.ws("/ws", &bob.access_token).await?;
    for n in 0..3 {
        ann_socket
            .send(json!({"action": "send_message", "message": format!("m{n}"), "request_id": n}))
            .await?;
        ann_socket.recv_type("ack").await?;
        bob_socket.recv_type("chat.message").await?;
    }
    let text = app.get("/metrics", None).await?.text;
    assert_eq!(series(&text, "chat_ws_connections")?, 2.0);
    assert_eq!(series(&text, "chat_ws_opened_total")?, 2.0);
    // Each message reached both sockets (plus presence and acks are not events).
    assert!(
        series(&text, "chat_events_delivered_total")? >= 6.0,
        "{text}"
    );
    assert_eq!(series(&text, "chat_delivery_latency_seconds_count")?, 3.0);
    assert!(series(&text, "chat_delivery_latency_seconds_sum")? < 30.0);
    // The hub took each message from the bus once, and counted its backlog each time.
    assert_eq!(
        series(&text, "chat_bus_receive_latency_seconds_count")?,
        3.0
    );
    assert!(
        series(&text, "chat_bus_receive_latency_seconds_sum")?
            <= series(&text, "chat_delivery_latency_seconds_sum")?
    );
    assert!(series(&text, "chat_hub_backlog_events_count")? >= 3.0);
    assert_eq!(series(&text, "chat_bus_lagged_total")?, 0.0);
    assert!(series(&text, r#"chat_db_pool_connections{state="idle"}"#)? >= 1.0);
    assert_eq!(series(&text, "chat_db_pool_waiting")?, 0.0);
    assert_eq!(series(&text, "chat_messages_in_flight")?, 0.0);
    // Where a message waited on its way: every send's queue wait, every batch's size,
    // transaction and publish.
    assert_eq!(series(&text, "chat_message_prepare_seconds_count")?, 3.0);
    // Each socket action (here: ann's three sends) is timed.
    assert_eq!(series(&text, "chat_ws_action_seconds_count")?, 3.0);
    // … and so is each socket's wait for its connection to take what was queued for it
    // (once per run of queued frames: acks and events reached the sockets).
    assert!(series(&text, "chat_ws_outbox_wait_seconds_count")? >= 1.0);
    assert!(series(&text, "chat_ws_outbox_wait_seconds_sum")? < 30.0);
    assert_eq!(series(&text, "chat_message_queue_seconds_count")?, 3.0);
    let batches = series(&text, "chat_message_batches_total")?;
    assert!(batches >= 1.0);
    assert_eq!(series(&text, "chat_message_batch_size_count")?, batches);
    assert_eq!(series(&text, "chat_message_batch_size_sum")?, 3.0);
    assert_eq!(
        series(&text, "chat_message_commit_duration_seconds_count")?,
        batches
    );
    // Recorded before a batch's senders are answered.
    assert_eq!(series(&text, "chat_message_answer_seconds_count")?, batches);
    // Recorded once the batch is published, which may be a moment after delivery.
    let published = series(&text, "chat_message_publish_duration_seconds_count")?;
    assert!(published == batches || published == batches - 1.0);
    match backend {
        Backend::Postgres => assert_eq!(series(&text, "chat_redis_up")?, 1.0),
        Backend::Sqlite => assert!(!text.contains("chat_redis_up")),
    }
    // Every bus message the instance received: at least the three messages (presence,
    // the test's readiness probes and the rest come on top).
    assert!(series(&text, "chat_bus_messages_received_total")? >= 3.0);
    // Production mode holds the presence pattern and a channel per chat and user its
    // sockets follow (the chat, ann and bob: each handshake was answered once its
    // subscriptions were in place); embedded mode has no broker.
    let subscriptions = match backend {
        Backend::Postgres => 4.0,
        Backend::Sqlite => 0.0,
    };
    assert_eq!(series(&text, "chat_bus_subscriptions")?, subscriptions);
    bob_socket.close().await?;
    let mut closed = 0.0;
    for _ in 0..100 {
        let text = app.get("/metrics", None).await?.text;
        closed = series(&text, r#"chat_ws_closed_total{code="1000"}"#).unwrap_or(0.0);
        if closed == 1.0 {
            assert_eq!(series(&text, "chat_ws_connections")?, 1.0);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(closed, 1.0);
    app.shutdown().await;
    Ok(())
}
