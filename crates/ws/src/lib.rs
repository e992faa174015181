//! WebSocket layer: `/ws`, `/ws/chats/{chat_id}`, `/ws/direct/{user_id}`.
//!
//! * [`handshake`]: authentication (bearer header, single-use ticket, `?token=`,
//!   `Sec-WebSocket-Protocol: chat, <token>`), origin check and scope, all refused with
//!   an HTTP status before the upgrade.
//! * [`session`]: one task per socket — inbound frames and their replies, heartbeat and
//!   idle timeout, frame-size and flood limits, close codes.
//! * [`upgrade`]: the connection after actix-http's upgrade hook — the app answers the
//!   handshake, then the socket is served on the bare TCP stream.
//! * [`outbox`]: each socket's bounded queue of encoded frames, written by the socket's
//!   writer (queued frames leave in one vectored write).
//! * [`frames`]: frame encoding (once per event, shared) and inbound decoding.
//! * [`protocol`]: the client actions and server replies of SPEC §5.
//! * [`hub`]: one per process; subscribes to the event bus and fans each event out to
//!   the sockets following its chat or user — the event is serialized and encoded into
//!   a frame once, shared by every socket.
//!
//! Every action goes through the same `chat_services` call as its REST twin.

pub mod close;
pub mod frames;
pub mod handshake;
pub mod hub;
pub mod outbox;
pub mod protocol;
pub mod session;
pub mod upgrade;

use actix_web::web;

pub use handshake::{HandshakeHook, WsSettings};
pub use hub::{Hub, HubLimits};
pub use session::FrameBudget;
pub use upgrade::{SessionSlot, serve_upgrade};

/// Registers the WebSocket routes. The app must carry `web::Data<AppContext>`,
/// `web::Data<Hub>` and `web::Data<WsSettings>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // The seeds' clients end WebSocket paths with a slash; both forms work.
    cfg.service(web::resource(["/ws", "/ws/"]).route(web::get().to(handshake::ws_all)))
        .service(
            web::resource(["/ws/chats/{chat_id}", "/ws/chats/{chat_id}/"])
                .route(web::get().to(handshake::ws_chat)),
        )
        .service(
            web::resource(["/ws/direct/{user_id}", "/ws/direct/{user_id}/"])
                .route(web::get().to(handshake::ws_direct)),
        );
}
