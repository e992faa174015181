//! The browser client: a single page at `/` and its scripts, styles and icon under
//! `/app/<version>/…`, all embedded in the binary at compile time (no files to deploy,
//! no CDN, no Node toolchain). The client uses only the public REST API and the
//! WebSocket protocol; see `docs/web-client.md`.
//!
//! Caching: `index.html` is revalidated on every load (`no-cache` + `ETag`); it names
//! the other files under a version derived from their contents, so they are cached for
//! good (`immutable`) and a new build is picked up on the next page load.

mod catalog;
mod routes;

use actix_web::web;

/// Registers `GET /` and `GET /app/{version}/{path}` (and `HEAD` of both). Nothing else:
/// `/api`, `/ws`, `/docs` and the operations endpoints stay with their own crates.
pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
}
