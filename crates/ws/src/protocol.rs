//! The chat protocol of SPEC §5: client frames in, replies out.
//!
//! Client frames are JSON text with an `action` (or none but a `message`, the seeds'
//! bare `{"message": "hi"}`, which is a `send_message`). `request_id`, when present,
//! is echoed in the reply. A bad frame gets an `error` event and the socket stays open.

use chat_domain::{ChatId, MessageId, Seq, UserId};
use chat_services::ServiceError;
use chat_services::chats::MessageView;
use serde::Deserialize;
use serde_json::{Value, json};

/// Largest text frame accepted (SPEC §6); bigger ones close the socket with 1009.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Most messages `retrieve_message` returns at once.
pub const MAX_RETRIEVE: i64 = 100;
/// `retrieve_message`'s default `number`.
pub const DEFAULT_RETRIEVE: i64 = 10;
/// Longest `request_id` string echoed back (a number is accepted too).
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// A parsed client frame: every field any action uses.
#[derive(Debug, Default, Deserialize)]
pub struct ClientFrame {
    /// What to do (absent with `message` present: `send_message`).
    pub action: Option<String>,
    /// Echoed in the reply.
    #[serde(skip)]
    pub request_id: Option<Value>,
    /// The chat (optional on chat-scoped sockets).
    pub chat_id: Option<ChatId>,
    /// Message text (`send_message`, `edit_message`).
    pub message: Option<String>,
    /// Idempotency key (`send_message`).
    pub client_id: Option<String>,
    /// Answered message (`send_message`).
    pub reply_to: Option<i64>,
    /// Uploaded files to attach (`send_message`).
    pub attachments: Option<Vec<i64>>,
    /// How many messages (`retrieve_message`).
    pub number: Option<i64>,
    /// Older than this seq (`retrieve_message`).
    pub before_seq: Option<i64>,
    /// Read position (`mark_read`).
    pub seq: Option<Seq>,
    /// The message (`edit_message`, `delete_message`, `add_reaction`, `remove_reaction`).
    pub message_id: Option<MessageId>,
    /// The reaction (`add_reaction`, `remove_reaction`).
    pub emoji: Option<String>,
    /// The user (`block_user`, `unblock_user`).
    pub user_id: Option<UserId>,
    /// The words to find (`search_messages`).
    pub q: Option<String>,
    /// Page size (`search_messages`).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (`search_messages`).
    pub cursor: Option<String>,
}

/// A protocol-level refusal: code and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// Stable code.
    pub code: &'static str,
    /// Explanation.
    pub detail: String,
}

impl FrameError {
    /// An error with a code.
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        FrameError {
            code,
            detail: detail.into(),
        }
    }
}

/// Parses a text frame. On failure the `request_id` (if it could be read) comes back
/// with the error, so the client can match it.
pub fn parse(text: &str) -> Result<ClientFrame, (Option<Value>, FrameError)> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| (None, FrameError::new("bad_frame", format!("not JSON: {e}"))))?;
    let request_id = match value.get("request_id") {
        None | Some(Value::Null) => None,
        Some(id @ Value::Number(_)) => Some(id.clone()),
        Some(Value::String(id)) if id.chars().count() <= MAX_REQUEST_ID_CHARS => {
            Some(Value::String(id.clone()))
        }
        // Not echoed: a client must not make the server repeat large values.
        Some(_) => {
            return Err((
                None,
                FrameError::new(
                    "bad_frame",
                    format!(
                        "request_id must be a number or a string of at most {MAX_REQUEST_ID_CHARS} characters"
                    ),
                ),
            ));
        }
    };
    if !value.is_object() {
        return Err((
            request_id,
            FrameError::new("bad_frame", "a frame must be a JSON object"),
        ));
    }
    let mut frame: ClientFrame = serde_json::from_value(value).map_err(|e| {
        (
            request_id.clone(),
            FrameError::new("bad_frame", e.to_string()),
        )
    })?;
    frame.request_id = request_id;
    Ok(frame)
}

impl ClientFrame {
    /// The action to run: explicit, or `send_message` for a bare `{"message": …}`.
    pub fn action(&self) -> Result<&str, FrameError> {
        match (&self.action, &self.message) {
            (Some(action), _) => Ok(action),
            (None, Some(_)) => Ok("send_message"),
            (None, None) => Err(FrameError::new("missing_field", "action is required")),
        }
    }

    /// The chat the action is about: the frame's `chat_id`, or the socket's chat.
    pub fn chat(&self, socket_chat: Option<ChatId>) -> Result<ChatId, FrameError> {
        match (self.chat_id, socket_chat) {
            (Some(id), Some(own)) if id != own => Err(FrameError::new(
                "wrong_chat",
                format!("this socket is for chat {own}"),
            )),
            (Some(id), _) => Ok(id),
            (None, Some(own)) => Ok(own),
            (None, None) => Err(FrameError::new(
                "missing_field",
                "chat_id is required on /ws",
            )),
        }
    }
}

/// The code and detail of a service error, as an `error` event carries them (the
/// mapping shared with HTTP: [`ServiceError::into_client`]).
pub fn service_error(err: ServiceError) -> FrameError {
    let client = err.into_client();
    FrameError::new(client.code, client.detail)
}

/// `{"type": "error", code, detail, request_id}`.
pub fn error_event(request_id: Option<Value>, err: &FrameError) -> String {
    json!({"type": "error", "code": err.code, "detail": err.detail, "request_id": request_id})
        .to_string()
}

/// A message as WebSocket clients see it (seed 002's `message` and `sender`).
pub fn message_json(view: &MessageView) -> Value {
    json!({
        "id": view.id,
        "chat_id": view.chat_id,
        "seq": view.seq,
        "message": view.content,
        "sender": view.sender,
        "sender_id": view.sender_id,
        "client_id": view.client_id,
        "reply_to": view.reply_to,
        "created_at": view.created_at,
        "edited_at": view.edited_at,
        "deleted_at": view.deleted_at,
        "attachments": view.attachments,
        "mentions": view.mentions,
        "reactions": view.reactions,
    })
}

/// The `messages` reply (seed 000's shape), newest first.
pub fn messages_event(
    request_id: Option<Value>,
    chat_id: ChatId,
    messages: &[MessageView],
    has_more: bool,
) -> String {
    let items: Vec<Value> = messages.iter().map(message_json).collect();
    json!({
        "type": "messages",
        "action": "retrieve_message",
        "chat_id": chat_id,
        "request_id": request_id,
        "data": {"messages": items, "meta": {"number_msgs": messages.len(), "has_more": has_more}},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_message_frames_are_sends() -> Result<(), String> {
        let frame = parse(r#"{"message": "hi"}"#).map_err(|e| format!("{e:?}"))?;
        assert_eq!(frame.action(), Ok("send_message"));
        assert_eq!(frame.chat(Some(ChatId(3))), Ok(ChatId(3)));
        assert!(frame.chat(None).is_err());
        Ok(())
    }

    #[test]
    fn request_ids_survive_bad_frames() {
        let (id, err) = parse(r#"{"request_id": "r1", "chat_id": "seven"}"#)
            .err()
            .unwrap_or((None, FrameError::new("x", "")));
        assert_eq!(id, Some(json!("r1")));
        assert_eq!(err.code, "bad_frame");
        assert!(parse("not json").is_err());
        assert!(parse("[1,2]").is_err());
        let frame = parse(r#"{"action": "ping", "request_id": 5, "extra": true}"#)
            .ok()
            .unwrap_or_default();
        assert_eq!(frame.request_id, Some(json!(5)));
    }

    #[test]
    fn request_ids_are_short_strings_or_numbers() {
        let ok = "r".repeat(MAX_REQUEST_ID_CHARS);
        let frame = parse(&json!({"action": "ping", "request_id": ok}).to_string());
        assert_eq!(frame.ok().and_then(|f| f.request_id), Some(json!(ok)));
        for bad in [
            json!("r".repeat(MAX_REQUEST_ID_CHARS + 1)),
            json!({"nested": [1, 2, 3]}),
            json!([1]),
            json!(true),
        ] {
            let refused = parse(&json!({"action": "ping", "request_id": bad}).to_string());
            let (echo, err) = refused
                .err()
                .unwrap_or((Some(json!("accepted")), FrameError::new("x", "")));
            assert_eq!((echo, err.code), (None, "bad_frame"), "{bad}");
        }
    }

    #[test]
    fn chat_scoped_sockets_refuse_other_chats() {
        let frame = ClientFrame {
            chat_id: Some(ChatId(2)),
            ..ClientFrame::default()
        };
        assert_eq!(
            frame.chat(Some(ChatId(1))).map_err(|e| e.code),
            Err("wrong_chat")
        );
        assert_eq!(frame.chat(None), Ok(ChatId(2)));
    }
}
