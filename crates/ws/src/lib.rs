//! WebSocket layer of the chat server — a skeleton until the real-time milestone.
//!
//! It will hold the handshake (`/ws`, `/ws/chats/{id}`, `/ws/direct/{user_id}`), one
//! task per connection with a bounded outbound queue, the protocol types of SPEC §5,
//! and the fan-out from `chat_db::bus::EventBus` to sockets. It depends on `services`
//! (never on `db` or `selectors` directly) and never on `api`.
