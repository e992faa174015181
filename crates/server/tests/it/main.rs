//! The server's integration tests, one binary (each module was once a binary of its own,
//! each linking the whole server): every module starts real servers on random ports and
//! talks to them over HTTP and WebSocket, in both storage modes where it applies.
//!
//! One file per area: run one with `cargo nextest run -p chat-server --test it auth::`.

mod attachments;
mod auth;
mod blocks;
mod browser;
mod chats;
mod cli;
mod cluster;
mod hardening;
mod hardening_auth;
mod infra;
mod mentions;
mod messages;
mod ops;
mod proxy;
mod reactions;
mod rotation;
mod scaleout;
mod search;
mod shutdown;
mod upgrade;
mod users;
mod web;
mod web_browser;
mod ws;
mod ws_features;
