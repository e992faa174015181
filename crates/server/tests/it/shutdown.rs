//! Graceful stop (what SIGTERM starts): readiness drops at once, late sends are refused,
//! sockets close with 1001 after answering, and every acknowledged message is stored.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chat_test_support::{Backend, Received, Refused, TestApp, WsClient, both_backends};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

both_backends!(
    a_stop_during_a_burst_loses_no_acknowledged_message,
    a_stop_turns_readiness_and_late_sends_away_at_once,
);

/// Every message of `chat` (oldest first), read through `app`'s REST API.
async fn all_messages(app: &TestApp, chat: i64, token: &str) -> anyhow::Result<Vec<Value>> {
    let mut after = 0;
    let mut all = Vec::new();
    loop {
        let page = app
            .get(
                &format!("/api/v1/chats/{chat}/messages?after_seq={after}&limit=200"),
                Some(token),
            )
            .await?;
        page.expect_status(200)?;
        let items = page.json["items"]
            .as_array()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no items: {}", page.text))?;
        let Some(last) = items.last() else {
            return Ok(all);
        };
        after = last["seq"].as_i64().unwrap_or(i64::MAX);
        all.extend(items);
    }
}

async fn a_stop_during_a_burst_loses_no_acknowledged_message(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut app = TestApp::spawn_with(backend, |c| {
        c.shutdown_grace = Duration::from_secs(5);
    })
    .await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let mut socket = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    const SENDS: usize = 300;
    // Every frame the server answered before its close frame.
    let mut acked: BTreeMap<String, i64> = BTreeMap::new();
    let mut refused: BTreeSet<String> = BTreeSet::new();
    for i in 0..SENDS {
        let frame = json!({
            "action": "send_message", "message": format!("burst {i}"),
            "client_id": format!("burst-{i}"), "request_id": i,
        });
        if i < 40 {
            socket.send(frame).await?;
        } else {
            // The server may have closed the socket by now: the frame is then unsent.
            let _ = socket.send(frame).await;
        }
        if i == 40 {
            // Mid-burst: some sends are committed, some queued, some still unread.
            while acked.len() < 10 {
                let ack = socket.recv_type("ack").await?;
                let i = ack["request_id"].as_u64().unwrap_or(u64::MAX);
                acked.insert(
                    format!("burst-{i}"),
                    ack["message_id"].as_i64().unwrap_or(0),
                );
            }
            app.begin_graceful_stop();
        }
    }
    let code = loop {
        match socket.next_frame().await? {
            Received::Json(value) => match value["type"].as_str() {
                Some("ack") => {
                    let i = value["request_id"].as_u64().unwrap_or(u64::MAX);
                    acked.insert(
                        format!("burst-{i}"),
                        value["message_id"].as_i64().unwrap_or(0),
                    );
                }
                Some("error") => {
                    assert_eq!(value["code"], "shutting_down", "{value}");
                    let i = value["request_id"].as_u64().unwrap_or(u64::MAX);
                    refused.insert(format!("burst-{i}"));
                }
                _ => {}
            },
            Received::Closed(code, reason) => {
                assert_eq!(reason, "server going away");
                break code;
            }
        }
    };
    // Every frame sent before the stop began was answered: acknowledged, or refused
    // with `shutting_down` (it was in the server's buffers when the socket closed).
    assert!(acked.len() + refused.len() >= 41, "{acked:?} {refused:?}");
    assert_eq!(code, 1001);
    assert!(
        !acked.is_empty(),
        "the sends before the stop were acknowledged"
    );
    tokio::time::timeout(Duration::from_secs(8), app.stopped())
        .await
        .map_err(|_| anyhow::anyhow!("the stop overran its grace"))??;

    // What is stored is exactly what was acknowledged: nothing acknowledged was lost,
    // nothing refused (or never answered) was stored behind the client's back.
    let peer = app.spawn_peer().await?;
    let stored = all_messages(&peer, chat, &ann.access_token).await?;
    let stored_ids: BTreeMap<String, i64> = stored
        .iter()
        .filter_map(|m| Some((m["client_id"].as_str()?.to_owned(), m["id"].as_i64()?)))
        .collect();
    assert_eq!(stored_ids.len(), stored.len(), "each client_id stored once");
    assert_eq!(stored_ids, acked);
    assert!(refused.iter().all(|c| !stored_ids.contains_key(c)));
    let seqs: Vec<i64> = stored.iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gapless");
    // The client resends what was not acknowledged (same client_ids) to the instance
    // that is still up: everything lands exactly once.
    let mut again = peer
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;
    for i in (0..SENDS).filter(|i| !acked.contains_key(&format!("burst-{i}"))) {
        again
            .send(json!({
                "action": "send_message", "message": format!("burst {i}"),
                "client_id": format!("burst-{i}"), "request_id": i,
            }))
            .await?;
        let ack = again.recv_type("ack").await?;
        assert_eq!(ack["duplicate"], false, "{ack}");
    }
    let stored = all_messages(&peer, chat, &ann.access_token).await?;
    assert_eq!(stored.len(), SENDS);
    peer.shutdown().await;
    Ok(())
}

/// Sends one HTTP/1.1 request on a kept-alive connection; the status code.
async fn keepalive_request(
    stream: &mut tokio::net::TcpStream,
    request: &str,
) -> anyhow::Result<(u16, String)> {
    stream.write_all(request.as_bytes()).await?;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await??;
        anyhow::ensure!(n > 0, "connection closed");
        buffer.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buffer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.get(9..12).unwrap_or_default().parse()?;
                return Ok((status, body.to_owned()));
            }
        }
    }
}

async fn a_stop_turns_readiness_and_late_sends_away_at_once(
    backend: Backend,
) -> anyhow::Result<()> {
    let mut app = TestApp::spawn_with(backend, |c| {
        c.shutdown_grace = Duration::from_secs(5);
        c.shutdown_delay = Duration::from_secs(2);
    })
    .await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let address = format!("127.0.0.1:{}", app.port);
    let readyz = format!("GET /readyz HTTP/1.1\r\nHost: {address}\r\n\r\n");
    let body = json!({"content": "late", "client_id": "late-1"}).to_string();
    let send = format!(
        "POST /api/v1/chats/{chat}/messages HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        ann.access_token,
        body.len()
    );
    // Connections a proxy keeps open to the instance, opened before the stop.
    let mut probe = tokio::net::TcpStream::connect(&address).await?;
    let mut sender = tokio::net::TcpStream::connect(&address).await?;
    assert_eq!(keepalive_request(&mut probe, &readyz).await?.0, 200);
    // Keeps the process from finishing its stop before the checks below: a socket.
    let mut socket = app
        .ws(&format!("/ws/chats/{chat}"), &ann.access_token)
        .await?;

    app.begin_graceful_stop();
    let (status, body) = keepalive_request(&mut probe, &readyz).await?;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""status":"draining""#), "{body}");
    let (status, body) = keepalive_request(&mut sender, &send).await?;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""code":"shutting_down""#), "{body}");
    // No new socket is taken: refused with 503 while the listener is still open…
    let bearer = format!("Bearer {}", ann.access_token);
    let path = format!("/ws/chats/{chat}");
    let refused = WsClient::connect(app.port, &path, &[("authorization", &bearer)]).await;
    assert!(
        matches!(&refused, Err(e) if e.downcast_ref::<Refused>().is_some_and(|r| r.0 == 503)),
        "{:?}",
        refused.err()
    );
    assert_eq!(
        socket.closed().await?,
        (1001, "server going away".to_owned())
    );
    // … and not even connected once CHAT_SHUTDOWN_DELAY has passed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(tokio::net::TcpStream::connect(&address).await.is_err());
    drop((probe, sender));
    tokio::time::timeout(Duration::from_secs(8), app.stopped())
        .await
        .map_err(|_| anyhow::anyhow!("the stop overran its grace"))??;
    let peer = app.spawn_peer().await?;
    assert!(
        all_messages(&peer, chat, &ann.access_token)
            .await?
            .is_empty()
    );
    peer.shutdown().await;
    Ok(())
}
