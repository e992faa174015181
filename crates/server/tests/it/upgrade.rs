//! The HTTP/1.1 upgrade path, spoken byte by byte as a client would: an accepted socket
//! is served on the bare connection (frames sent right behind the handshake are not
//! lost), and every other WebSocket upgrade request gets the app's ordinary answer, then the
//! connection is closed. Both modes.

use chat_test_support::{Backend, TestApp, WS_WAIT, both_backends};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

both_backends!(
    frames_sent_behind_the_handshake_are_answered_in_order,
    upgrade_requests_that_are_not_accepted_get_an_answer_and_a_close,
);

/// A masked client text frame (a zero key keeps the payload as is).
pub(crate) fn masked_text(payload: &str) -> Vec<u8> {
    let bytes = payload.as_bytes();
    let mut frame = vec![0x81];
    match u16::try_from(bytes.len()) {
        Ok(len) if len < 126 => frame.push(0x80 | len as u8),
        Ok(len) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&len.to_be_bytes());
        }
        Err(_) => panic!("test frames are small"),
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(bytes);
    frame
}

fn handshake(path: &str, port: u16, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Reads an HTTP response head (through the blank line).
async fn read_head(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    Ok(String::from_utf8(head)?)
}

/// Reads one server frame: its opcode and payload (server frames are never masked).
async fn read_frame(stream: &mut TcpStream) -> anyhow::Result<(u8, Vec<u8>)> {
    let mut first = [0u8; 2];
    stream.read_exact(&mut first).await?;
    anyhow::ensure!(first[1] & 0x80 == 0, "a server frame is not masked");
    let len = match first[1] & 0x7F {
        126 => {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await?;
            u64::from(u16::from_be_bytes(len))
        }
        127 => {
            let mut len = [0u8; 8];
            stream.read_exact(&mut len).await?;
            u64::from_be_bytes(len)
        }
        len => u64::from(len),
    };
    let mut payload = vec![0u8; usize::try_from(len)?];
    stream.read_exact(&mut payload).await?;
    Ok((first[0] & 0x0F, payload))
}

/// The next text frame's JSON (pings skipped).
async fn next_event(stream: &mut TcpStream) -> anyhow::Result<Value> {
    loop {
        let (opcode, payload) = tokio::time::timeout(WS_WAIT, read_frame(stream)).await??;
        match opcode {
            0x1 => return Ok(serde_json::from_slice(&payload)?),
            0x9 => continue,
            other => anyhow::bail!("unexpected frame opcode {other}: {payload:?}"),
        }
    }
}

async fn frames_sent_behind_the_handshake_are_answered_in_order(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await?;
    // The handshake and three frames in one write: the frames arrive in the same read
    // as the request, before the server has answered it.
    let mut bytes = handshake(
        &format!("/ws/chats/{chat}"),
        app.port,
        &format!("Authorization: Bearer {}\r\n", ann.access_token),
    )
    .into_bytes();
    for frame in [
        json!({"action": "ping", "request_id": "p1"}),
        json!({"action": "send_message", "message": "early", "request_id": "s1"}),
        json!({"action": "ping", "request_id": "p2"}),
    ] {
        bytes.extend_from_slice(&masked_text(&frame.to_string()));
    }
    stream.write_all(&bytes).await?;
    let head = read_head(&mut stream).await?;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("sec-websocket-accept: "),
        "{head}"
    );
    let mut answers = Vec::new();
    while answers.len() < 3 {
        let event = next_event(&mut stream).await?;
        if event["type"] == "pong" || event["type"] == "ack" {
            answers.push(event);
        }
    }
    assert_eq!(answers[0]["request_id"], "p1");
    assert_eq!(answers[1]["request_id"], "s1");
    assert_eq!(answers[1]["seq"], 1);
    assert_eq!(answers[2]["request_id"], "p2");
    let history = app
        .get(
            &format!("/api/v1/chats/{chat}/messages"),
            Some(&ann.access_token),
        )
        .await?;
    history.expect_status(200)?;
    assert_eq!(history.json["items"][0]["content"], "early");
    // A close from the client is answered with a close, then the connection ends.
    let mut close = vec![0x88, 0x82, 0, 0, 0, 0];
    close.extend_from_slice(&1000u16.to_be_bytes());
    stream.write_all(&close).await?;
    let mut rest = Vec::new();
    tokio::time::timeout(WS_WAIT, stream.read_to_end(&mut rest)).await??;
    assert!(
        rest.windows(2).any(|w| w == [0x88, 0x02]),
        "a close frame answers the client's: {rest:?}"
    );
    app.shutdown().await;
    Ok(())
}

/// Sends `request` on a fresh connection and reads until the server closes it.
async fn exchange(port: u16, request: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(WS_WAIT, stream.read_to_end(&mut response))
        .await
        .map_err(|_| anyhow::anyhow!("the server kept the connection open"))??;
    Ok(String::from_utf8(response)?)
}

async fn upgrade_requests_that_are_not_accepted_get_an_answer_and_a_close(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = TestApp::spawn(backend).await?;
    let (ann, _bob, chat) = app.two_in_a_group().await?;
    // A WebSocket upgrade of an ordinary route: the route's answer, body and all, and
    // the connection closes (it cannot go back to plain HTTP).
    let response = exchange(app.port, &handshake("/healthz", app.port, "")).await?;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let health: Value = serde_json::from_str(body)?;
    assert_eq!(health["status"], "ok", "{body}");
    // A refused WebSocket handshake is a problem document, the same as over plain HTTP,
    // with the middleware's headers.
    let response = exchange(app.port, &handshake("/ws", app.port, "")).await?;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{response}"
    );
    assert!(
        lower.contains("x-content-type-options: nosniff"),
        "{response}"
    );
    assert!(response.contains("missing_token"), "{response}");
    // A WebSocket handshake without `Connection: Upgrade` has no connection to take over.
    let response = exchange(
        app.port,
        &format!(
            "GET /ws/chats/{chat} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
            app.port, ann.access_token
        ),
    )
    .await?;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("not_a_websocket"), "{response}");
    // Nothing was registered by the refusals.
    assert_eq!(app.context.metrics.ws_connections.get(), 0);
    app.shutdown().await;
    Ok(())
}
