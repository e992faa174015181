//! Everything a service call needs, built once by the server and shared.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chat_db::bus::EventBus;
use chat_selectors::Store;

use crate::auth::tokens::JwtKeys;
use crate::rate_limit::RateLimiter;

/// Something a test runs inside a service call to force a race deterministically
/// (never set outside tests).
pub type TestHook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Token and password settings.
#[derive(Clone)]
pub struct AuthSettings {
    /// HS256 signing keys.
    pub keys: JwtKeys,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of a session's refresh window.
    pub refresh_ttl: Duration,
    /// bcrypt cost for new hashes.
    pub bcrypt_cost: u32,
    /// Tests only: awaited by a log-in between verifying the password and opening the
    /// session — the window a concurrent password change must not slip through.
    pub after_password_check: Option<TestHook>,
}

/// Chat rules that are configuration.
#[derive(Debug, Clone, Copy)]
pub struct ChatSettings {
    /// `CHAT_DIRECT_REQUIRES_FRIENDSHIP`: direct chats only between friends.
    pub direct_requires_friendship: bool,
    /// `CHAT_MAX_CHATS_PER_USER`: chats one user may belong to.
    pub max_chats_per_user: i64,
    /// `CHAT_MAX_UPLOAD_MB`, in bytes: the largest attachment.
    pub max_upload_bytes: usize,
}

/// Shared state of the service layer.
#[derive(Clone)]
pub struct AppContext {
    /// Database and cache.
    pub store: Store,
    /// Domain events out.
    pub bus: Arc<dyn EventBus>,
    /// Tokens and passwords.
    pub auth: AuthSettings,
    /// Per-client request budgets.
    pub limits: Arc<RateLimiter>,
    /// Chat rules.
    pub chat: ChatSettings,
    /// Group commit of messages.
    pub writer: crate::writer::MessageWriter,
    /// Rendered history kept in this process (`CHAT_HISTORY_CACHE_MB`).
    pub history: Arc<crate::history_cache::HistoryCache>,
    /// Socket counters behind presence, over every instance.
    pub presence: Arc<dyn chat_db::presence::PresenceRegistry>,
    /// Serving or draining towards a stop.
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    /// What operators watch (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where attachments' bytes are kept.
    pub files: chat_db::files::FileStore,
    /// Uploads being received at once in this process (each is held in memory until it
    /// is stored): [`crate::attachments::concurrent_uploads`].
    pub uploads: Arc<crate::attachments::UploadSlots>,
}
