//! The bare fan-out (`chat-bare-broadcast`): the baseline of every benchmark. A WebSocket fan-out with no
//! authentication and no storage: each text frame `{"message": …}` on
//! `/ws/chats/{id}` gets the chat's next seq and goes to every socket of the chat as a
//! `chat.message` event (serialized once), with an `ack` to the sender. What the real
//! server costs beyond this is the price of auth, storage and durability.
//!
//! Any other path is plain HTTP/1.1 (the `history` baseline): every request, whatever its
//! path, gets `200` and the same JSON page of [`PAGE`] made-up messages, shaped and sized
//! like the real server's history page, on a keep-alive connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Frames a socket may have queued (as in the real server).
const QUEUE: usize = 1024;
/// Messages in the fixed history page (the load generator's default `limit`).
pub const PAGE: usize = 50;

#[derive(Default)]
struct Room {
    seq: i64,
    members: HashMap<u64, mpsc::Sender<Arc<str>>>,
}

type Rooms = Arc<Mutex<HashMap<i64, Room>>>;

fn lock(rooms: &Rooms) -> std::sync::MutexGuard<'_, HashMap<i64, Room>> {
    rooms.lock().unwrap_or_else(|p| p.into_inner())
}

#[expect(
    clippy::result_large_err,
    reason = "the handshake callback's signature is tungstenite's"
)]
async fn serve(stream: TcpStream, id: u64, rooms: Rooms, page: Arc<[u8]>) {
    let _ = stream.set_nodelay(true);
    if !is_websocket_path(&stream).await {
        let _ = serve_http(stream, &page).await;
        return;
    }
    let mut chat = 0_i64;
    let callback = |request: &Request, response: Response| {
        chat = request
            .uri()
            .path()
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok(response)
    };
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let (mut sink, mut inbound) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(QUEUE);
    lock(&rooms)
        .entry(chat)
        .or_default()
        .members
        .insert(id, tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            // Everything already queued goes out in one flush.
            if sink.feed(Message::text(first.to_string())).await.is_err() {
                return;
            }
            while let Ok(next) = rx.try_recv() {
                if sink.feed(Message::text(next.to_string())).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(frame)) = inbound.next().await {
        let Message::Text(text) = frame else { continue };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(message) = value["message"].as_str() else {
            continue;
        };
        let mut rooms = lock(&rooms);
        let room = rooms.entry(chat).or_default();
        room.seq += 1;
        let event: Arc<str> = Arc::from(serde_json::json!({"type": "chat.message", "chat_id": chat, "seq": room.seq, "message": message}).to_string());
        for member in room.members.values() {
            let _ = member.try_send(event.clone());
        }
        let _ = tx.try_send(Arc::from(
            serde_json::json!({"type": "ack", "chat_id": chat, "seq": room.seq}).to_string(),
        ));
    }
    if let Some(room) = lock(&rooms).get_mut(&chat) {
        room.members.remove(&id);
    }
    writer.abort();
}

/// Whether the request on `stream` is for `/ws…` (a WebSocket upgrade), peeking at its
/// request line without consuming it.
async fn is_websocket_path(stream: &TcpStream) -> bool {
    const PREFIX: &[u8] = b"GET /ws";
    let mut buf = [0_u8; PREFIX.len()];
    for _ in 0..1000 {
        match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n >= PREFIX.len() || !PREFIX.starts_with(&buf[..n]) => {
                return buf.starts_with(PREFIX);
            }
            // The request line arrived in pieces: wait for the rest.
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
        }
    }
    false
}

/// Answers every request on the connection with the fixed page until the client closes
/// it (or asks to).
async fn serve_http(stream: TcpStream, page: &[u8]) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        page.len()
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(page);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let (mut length, mut close) = (0_u64, false);
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.trim().eq_ignore_ascii_case("close");
                }
            }
        }
        tokio::io::copy(&mut (&mut reader).take(length), &mut tokio::io::sink()).await?;
        reader.get_mut().write_all(&answer).await?;
        if close {
            return Ok(());
        }
    }
}

/// The fixed history page: [`PAGE`] messages shaped like the real server's.
pub fn history_page() -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..PAGE as i64)
        .map(|i| {
            serde_json::json!({
                "id": 1_000_000 + i, "chat_id": 1, "seq": 1_000 - i, "sender_id": 1,
                "sender": "lg_bare_sender", "content": "h".repeat(64), "client_id": null,
                "reply_to": null, "created_at": "2026-01-01T00:00:00.000000Z",
                "edited_at": null, "deleted_at": null,
            })
        })
        .collect();
    serde_json::json!({"items": items, "next_cursor": "950"})
        .to_string()
        .into_bytes()
}

/// Serves the bare fan-out (and the fixed history page) on `listener` until the
/// process ends.
pub async fn run(listener: TcpListener) -> std::io::Result<()> {
    let rooms: Rooms = Arc::default();
    let page: Arc<[u8]> = Arc::from(history_page());
    let mut next_id = 0_u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next_id += 1;
        tokio::spawn(serve(stream, next_id, rooms.clone(), page.clone()));
    }
}
