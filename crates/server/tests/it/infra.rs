//! Behaviour when dependencies fail, and several instances acting as one.

use std::time::Duration;

use chat_test_support::{Backend, TEST_PASSWORD, TestApp};
use serde_json::json;

#[actix_web::test]
async fn an_unreachable_database_answers_503_and_not_ready() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        c.database_timeout = Duration::from_millis(500)
    })
    .await?;
    let ann = app.register("ann").await?;
    app.get("/api/v1/users/me", Some(&ann.access_token))
        .await?
        .expect_status(200)?;
    app.database.drop_now().await?;
    let me = app.get("/api/v1/users/me", Some(&ann.access_token)).await?;
    me.expect_problem(503, "unavailable")?;
    assert!(
        !me.text.contains("terminating") && !me.text.contains("database"),
        "leaked internals: {}",
        me.text
    );
    let register = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "bob", "email": "bob@example.com", "password": TEST_PASSWORD}),
        )
        .await?;
    register.expect_problem(503, "unavailable")?;
    let ready = app.get("/readyz", None).await?;
    ready.expect_status(503)?;
    assert_eq!(ready.json["status"], "unavailable");
    assert_ne!(ready.json["database"], "ok");
    assert_eq!(ready.json["cache"], "ok");
    app.get("/healthz", None).await?.expect_status(200)?;
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn pooled_connections_cut_by_the_database_are_replaced_not_handed_out() -> anyhow::Result<()>
{
    // The pool checks a connection on checkout without a round trip (no `SELECT 1`):
    // this is the case that check exists for — every connection the pool holds was
    // ended by the server (a restart, a failover) while idle.
    let app = TestApp::spawn(Backend::Postgres).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let history = format!("/api/v1/chats/{chat}/messages");
    app.get(&history, Some(&ann.access_token))
        .await?
        .expect_status(200)?;
    // Three connections held at once, so the pool holds several (concurrent requests
    // would not do it reliably: kept history pages need no connection).
    let chat_db::DbPool::Postgres(pool) = &app.context.store.db else {
        anyhow::bail!("a PostgreSQL app has a PostgreSQL pool");
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.get().await.map_err(|e| anyhow::anyhow!("{e:?}"))?);
    }
    drop(held);
    let ended = app.database.terminate_connections().await?;
    assert!(
        ended >= 2,
        "expected pooled connections to end, ended {ended}"
    );
    // The pool learns of a closed socket when its connection task reads the
    // termination; give it a moment, as any real outage would.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..8 {
        app.get(&history, Some(&ann.access_token))
            .await?
            .expect_status(200)?;
    }
    app.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn a_redis_outage_degrades_to_the_database() -> anyhow::Result<()> {
    // Nothing listens on port 1: every cache call fails fast.
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        c.redis_url = Some("redis://127.0.0.1:1".to_owned())
    })
    .await?;
    let cy = app.register("cyd").await?;
    let again = app.login("cyd", TEST_PASSWORD).await?;
    app.get("/api/v1/users/me", Some(&cy.access_token))
        .await?
        .expect_status(200)?;
    // Lists of people are still served; presence, kept only in Redis, is unknown.
    let group = app.create_group(&cy, "Outage", "private").await?;
    let members = app
        .get(
            &format!("/api/v1/chats/{group}/members"),
            Some(&cy.access_token),
        )
        .await?;
    members.expect_status(200)?;
    assert_eq!(members.json["items"][0]["user_id"], cy.user_id);
    assert!(
        members.json["items"][0]["online"].is_null(),
        "{}",
        members.text
    );
    app.get("/api/v1/friends", Some(&cy.access_token))
        .await?
        .expect_status(200)?;
    app.request(
        actix_web::http::Method::POST,
        "/api/v1/auth/logout",
        Some(&cy.access_token),
        None,
    )
    .await?
    .expect_status(204)?;
    // Revocation still holds: the database answers when the cache cannot.
    app.get("/api/v1/users/me", Some(&cy.access_token))
        .await?
        .expect_problem(401, "session_revoked")?;
    app.get("/api/v1/users/me", Some(&again.access_token))
        .await?
        .expect_status(200)?;
    // A socket still opens — its handshake stops waiting for the subscriptions Redis
    // cannot confirm — and hears what is said on this instance, delivered locally.
    let mut socket = app
        .ws(&format!("/ws/chats/{group}"), &again.access_token)
        .await?;
    app.send_text(&again, group, "still here").await?;
    assert_eq!(
        socket.recv_type("chat.message").await?["message"],
        "still here"
    );
    let ready = app.get("/readyz", None).await?;
    ready.expect_status(503)?;
    assert_eq!(ready.json["database"], "ok");
    assert_ne!(ready.json["cache"], "ok");
    app.shutdown().await;
    Ok(())
}

/// Panics are counted per server instance: one provoked on an instance's worker (a
/// handshake hook that panics) shows on that instance only, and the instance still
/// serves.
#[actix_web::test]
async fn panics_are_counted_per_server_instance() -> anyhow::Result<()> {
    let hook: chat_ws::HandshakeHook = std::sync::Arc::new(
        || -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
            panic!("provoked by the test")
        },
    );
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.ws_before_register = Some(hook)).await?;
    let peer = app.spawn_peer_with(|c| c.ws_before_register = None).await?;
    let ann = app.register("ann").await?;
    assert_eq!((app.panics(), peer.panics()), (0, 0));
    let refused = app.ws("/ws", &ann.access_token).await;
    assert!(refused.is_err(), "the handshake cannot have succeeded");
    assert_eq!((app.panics(), peer.panics()), (1, 0));
    // The instance still answers.
    app.get("/api/v1/users/me", Some(&ann.access_token))
        .await?
        .expect_status(200)?;
    peer.shutdown().await;
    app.shutdown().await;
    Ok(())
}

/// A test's Redis keys go with its last server even when it never reaches `shutdown`
/// (a failed assertion): nothing is left under its prefix.
#[actix_web::test]
async fn a_dropped_test_server_leaves_no_redis_keys() -> anyhow::Result<()> {
    let app = TestApp::spawn(Backend::Postgres).await?;
    let peer = app.spawn_peer().await?;
    app.register("keys").await?;
    let prefix = app.config.redis_prefix.clone();
    let count = || chat_test_support::count_redis_keys(&prefix);
    assert!(count().await? > 0, "the sign-up cached nothing");
    drop(app);
    // The peer still uses the prefix: its keys stay.
    assert!(
        count().await? > 0,
        "keys went while a server still used them"
    );
    drop(peer);
    assert_eq!(count().await?, 0, "keys left under {prefix}:");
    Ok(())
}

#[actix_web::test]
async fn logout_on_one_instance_is_refused_by_another_at_once() -> anyhow::Result<()> {
    let a = TestApp::spawn(Backend::Postgres).await?;
    let b = a.spawn_peer().await?;
    logout_is_refused_across_instances(a, b).await
}

/// A logout on `a` is refused by `b` on the very next request; a user made on `b`
/// logs in on `a`.
pub(crate) async fn logout_is_refused_across_instances(
    a: TestApp,
    b: TestApp,
) -> anyhow::Result<()> {
    let dee = a.register("dee").await?;
    // Both instances have the live session cached (shared Redis) …
    a.get("/api/v1/users/me", Some(&dee.access_token))
        .await?
        .expect_status(200)?;
    b.get("/api/v1/users/me", Some(&dee.access_token))
        .await?
        .expect_status(200)?;
    a.request(
        actix_web::http::Method::POST,
        "/api/v1/auth/logout",
        Some(&dee.access_token),
        None,
    )
    .await?
    .expect_status(204)?;
    // … and the very next request on the other instance is refused.
    b.get("/api/v1/users/me", Some(&dee.access_token))
        .await?
        .expect_problem(401, "session_revoked")?;
    // A user made on B logs in on A.
    b.register("eli").await?;
    a.login("eli", TEST_PASSWORD).await?;
    b.shutdown().await;
    a.shutdown().await;
    Ok(())
}

#[actix_web::test]
async fn sqlite_serves_concurrent_writers_without_locking_errors() -> anyhow::Result<()> {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.workers = 2).await?;
    let sign_ups = (0..24).map(|i| {
        app.post(
            "/api/v1/auth/register",
            None,
            json!({"username": format!("writer{i}"), "email": format!("writer{i}@example.com"), "password": TEST_PASSWORD}),
        )
    });
    for response in futures_util::future::join_all(sign_ups).await {
        response?.expect_status(201)?;
    }
    let first = app.login("writer0", TEST_PASSWORD).await?;
    let page = app
        .get("/api/v1/users?limit=200", Some(&first.access_token))
        .await?;
    assert_eq!(page.json["items"].as_array().map(Vec::len), Some(24));
    app.shutdown().await;
    Ok(())
}

/// A client that hangs up while its request waits inside a database call must not
/// disturb anyone else: before this was guarded, dropping the handler mid-call on
/// SQLite made diesel-async wait for the call with `block_in_place`, which panics on
/// actix's single-threaded worker runtime (tokio contains it to that connection's
/// task, but it is a panic in the server), and on PostgreSQL the update ran without
/// its cache write. The request is now finished whole: row and cache.
async fn a_client_hanging_up_mid_query_disturbs_nobody(backend: Backend) -> anyhow::Result<()> {
    use std::io::Write;

    let app = TestApp::spawn(backend).await?;
    let (ann, bob, chat) = app.two_in_a_group().await?;
    let mut ann_socket = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;

    // Bob's profile is in the cache: the update must replace it there too, or every
    // reader of the cache goes on seeing the old name.
    let cached = chat_selectors::users::user_profile(&app.context.store, bob.user_id).await?;
    assert_ne!(
        cached.map(|p| p.display_name).as_deref(),
        Some("Bob Hung-Up")
    );

    let lock = app.database.hold_write_lock().await?;
    let body = json!({"display_name": "Bob Hung-Up"}).to_string();
    let request = format!(
        "PATCH /api/v1/users/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        bob.access_token,
        body.len()
    );
    // A plain socket: a few hundred bytes to localhost do not block the test's runtime.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", app.port))?;
    stream.write_all(request.as_bytes())?;
    // The update is now waiting for the lock inside the database call; hang up with a
    // reset (SO_LINGER 0), which fails the connection's next read at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.set_nonblocking(true)?;
    let stream = tokio::net::TcpStream::from_std(stream)?;
    #[allow(deprecated)]
    stream.set_linger(Some(Duration::ZERO))?;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(lock);

    // The worker that served the hung-up request still serves its sockets …
    app.post(
        &format!("/api/v1/chats/{chat}/messages"),
        Some(&bob.access_token),
        json!({"content": "still here?"}),
    )
    .await?
    .expect_status(201)?;
    let event = ann_socket.recv_type("chat.message").await?;
    assert_eq!(event["message"], "still here?");
    // … and the abandoned update was carried out, not dropped half-way.
    let mut name = String::new();
    for _ in 0..50 {
        let me = app.get("/api/v1/users/me", Some(&bob.access_token)).await?;
        me.expect_status(200)?;
        name = me.json["display_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if name == "Bob Hung-Up" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(name, "Bob Hung-Up");
    assert_eq!(app.panics(), 0, "a server thread panicked");
    app.shutdown().await;
    Ok(())
}

chat_test_support::both_backends!(a_client_hanging_up_mid_query_disturbs_nobody);
