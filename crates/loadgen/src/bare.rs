//! The bare fan-out (`chat-bare-broadcast`): the baseline of every benchmark. A WebSocket fan-out with no
//! authentication and no storage: each text frame `{"message": …}` on
//! `/ws/chats/{id}` gets the chat's next seq and goes to every socket of the chat as a
//! `chat.message` event (serialized once), with an `ack` to the sender. What the real
//! server costs beyond this is the price of auth, storage and durability.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Frames a socket may have queued (as in the real server).
const QUEUE: usize = 1024;

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
async fn serve(stream: TcpStream, id: u64, rooms: Rooms) {
    let _ = stream.set_nodelay(true);
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

/// Serves the bare fan-out on `listener` until the process ends.
pub async fn run(listener: TcpListener) -> std::io::Result<()> {
    let rooms: Rooms = Arc::default();
    let mut next_id = 0_u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next_id += 1;
        tokio::spawn(serve(stream, next_id, rooms.clone()));
    }
}
