//! The load generator of the chat server (SPEC §7).
//!
//! It drives a server only through its public API and real sockets: users, groups and
//! memberships are made over HTTP, messages flow over WebSockets. Every receiver checks
//! each chat's `seq`s, so loss and disorder are counted, not guessed; latency is the time
//! from a sender's send to each receiver's receive (both in this process, one clock).
//!
//! Scenarios: `idle`, `groups`, `burst` (WebSockets, [`scenario`]) and `history` (REST
//! pages over keep-alive HTTP/1.1, [`history`]); any of them but `burst` can be spread
//! over several processes ([`shard`]).
//!
//! The same scenarios run against `chat-bare-broadcast`, a WebSocket fan-out with no auth
//! and no storage, so every report can give "server / bare fan-out" measured in one run.

pub mod accounting;
pub mod bare;
pub mod event;
pub mod histogram;
pub mod history;
pub mod http;
pub mod report;
pub mod scenario;
pub mod shard;
