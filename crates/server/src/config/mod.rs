//! Configuration (SPEC §2): `CHAT_*` keys from the environment, over an optional
//! `--config` file, over an optional `.env` file, over defaults that need nothing
//! installed. Every value is checked here, at start-up; a bad one stops the server
//! with one line naming the key.

mod read;
mod sources;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use read::{Reader, invalid};
pub use read::{parse_bool, parse_bytes, parse_duration};
pub use sources::{KEYS, Sources};

use chat_db::files::{FilesConfig, S3Config};
use chat_db::{DatabaseUrl, SqliteSync};
use chat_services::TestHook;
use chat_services::rate_limit::{self, Limit};
use chat_services::writer::DEFAULT_POSTGRES_WRITERS;
use chat_ws::{FrameBudget, HandshakeHook};

/// Deployment environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local development (human-readable logs).
    Dev,
    /// Test runs.
    Test,
    /// Production: JSON logs, insecure settings refused.
    Prod,
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// `CHAT_BIND`: listen address.
    pub bind: SocketAddr,
    /// `CHAT_DATABASE_URL`.
    pub database_url: DatabaseUrl,
    /// `CHAT_REDIS_URL`: Redis cache + pub/sub when set; in-process otherwise.
    pub redis_url: Option<String>,
    /// `CHAT_REDIS_PREFIX`: prefix of every Redis key and channel.
    pub redis_prefix: String,
    /// `CHAT_RATE_LIMITS`: `false` when `off`.
    pub rate_limits: bool,
    /// `CHAT_JWT_SECRET`: when unset outside prod, a generated secret is kept in a file.
    pub jwt_secret: Option<String>,
    /// `CHAT_JWT_SECRET_PREVIOUS`: the secret being rotated out (verifies, never signs).
    pub jwt_secret_previous: Option<String>,
    /// `CHAT_ACCESS_TTL`.
    pub access_ttl: Duration,
    /// `CHAT_REFRESH_TTL`.
    pub refresh_ttl: Duration,
    /// `CHAT_BCRYPT_COST`.
    pub bcrypt_cost: u32,
    /// `CHAT_ENV`.
    pub env: Environment,
    /// `CHAT_LOG`: tracing filter.
    pub log: String,
    /// `CHAT_ALLOWED_ORIGINS`: extra origins allowed for browsers (empty: same origin).
    pub allowed_origins: Vec<String>,
    /// `CHAT_DIRECT_REQUIRES_FRIENDSHIP`.
    pub direct_requires_friendship: bool,
    /// `CHAT_AUTO_MIGRATE`: apply migrations when `serve` starts.
    pub auto_migrate: bool,
    /// `CHAT_DATABASE_POOL_SIZE`.
    pub database_pool_size: u32,
    /// `CHAT_DATABASE_TIMEOUT`: wait for a pooled connection before answering 503.
    pub database_timeout: Duration,
    /// `CHAT_TRUST_PROXY_HEADERS`: take client addresses from `X-Forwarded-For`.
    pub trust_proxy_headers: bool,
    /// `CHAT_WORKERS`: HTTP worker threads.
    pub workers: usize,
    /// `CHAT_BACKGROUND_THREADS`: threads of the runtime that runs the message writers,
    /// their publishers, the broker subscriber and the socket hub's router (0: the main
    /// thread runs them).
    pub background_threads: usize,
    /// `CHAT_DB_WRITERS`: message writers committing batches in parallel on PostgreSQL
    /// (each with its own connection; SQLite always has one).
    pub db_writers: u32,
    /// `CHAT_HISTORY_CACHE_MB`: rendered history kept in memory, in bytes (0: none).
    pub history_cache_bytes: usize,
    /// `CHAT_PRESENCE_HEARTBEAT`: how often this instance renews its presence (it counts
    /// as dead three heartbeats after its last).
    pub presence_heartbeat: Duration,
    /// `CHAT_SQLITE_SYNCHRONOUS`: when a SQLite commit is durable.
    pub sqlite_sync: SqliteSync,
    /// `CHAT_WS_MAX_QUEUED_BYTES`: outbound bytes a socket may have queued.
    pub ws_max_queued_bytes: usize,
    /// `CHAT_MAX_SOCKETS_PER_USER`: open sockets per user (per process).
    pub max_sockets_per_user: usize,
    /// `CHAT_MAX_CHATS_PER_USER`: chats a user may belong to.
    pub max_chats_per_user: i64,
    /// `CHAT_RATE_MESSAGES`: the per-user message budget, when not the built-in one.
    pub message_rate: Option<Limit>,
    /// `CHAT_RATE_GROUP_CREATE`, `CHAT_RATE_CHAT_JOIN`: other per-user budgets, when not
    /// the built-in ones.
    pub rate_overrides: Vec<Limit>,
    /// `CHAT_WS_FRAME_RATE`: how fast each socket's frames are read.
    pub ws_frame_budget: FrameBudget,
    /// `CHAT_SHUTDOWN_GRACE`: how long a stop may take (drain sockets, commit queued
    /// messages) before the process exits anyway.
    pub shutdown_grace: Duration,
    /// `CHAT_SHUTDOWN_DELAY`: how long a stopping server keeps its listener open,
    /// answering `/readyz` 503 and refusing new work, so a proxy or orchestrator moves
    /// traffic away before connections are refused (part of the grace).
    pub shutdown_delay: Duration,
    /// `CHAT_MAX_UPLOAD_MB`, in bytes: the largest attachment.
    pub max_upload_bytes: usize,
    /// Where attachments are kept: `CHAT_ATTACHMENTS_DIR`, or an S3-compatible bucket
    /// (`CHAT_S3_BUCKET`, `CHAT_S3_REGION`, `CHAT_S3_ENDPOINT`, `CHAT_S3_ACCESS_KEY_ID`,
    /// `CHAT_S3_SECRET_ACCESS_KEY`).
    pub files: FilesConfig,
    /// Whether `serve` handles SIGINT/SIGTERM (tests turn it off; not a `CHAT_` key).
    pub handle_signals: bool,
    /// Tests only (not a `CHAT_` key): see [`chat_ws::WsSettings::before_register`].
    pub ws_before_register: Option<HandshakeHook>,
    /// Tests only (not a `CHAT_` key): see
    /// [`chat_services::AuthSettings::after_password_check`].
    pub login_after_password_check: Option<TestHook>,
    /// Tests only (not a `CHAT_` key): called on each worker thread as it starts serving
    /// (the test harness counts panics per server instance with it).
    pub worker_started: Option<WorkerHook>,
}

/// See [`Config::worker_started`].
pub type WorkerHook = std::sync::Arc<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("database", &self.database_url.backend())
            .field("redis", &self.redis_url.is_some())
            .field("env", &self.env)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// A configuration error: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending key (`CHAT_BIND`), or the file that could not be read.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid configuration: {}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Where attachments go: a directory, or an S3-compatible bucket when `CHAT_S3_BUCKET`
/// is set (every key is read either way).
fn files(r: &Reader<'_>) -> Result<FilesConfig, ConfigError> {
    let dir = r.parsed("CHAT_ATTACHMENTS_DIR", "data/attachments", |raw| {
        Ok(std::path::PathBuf::from(raw))
    })?;
    let bucket = r.optional("CHAT_S3_BUCKET", |raw| {
        let ok = (3..=63).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        ok.then(|| raw.to_owned())
            .ok_or_else(|| "must be an S3 bucket name (3-63 of a-z, 0-9, '-', '.')".to_owned())
    })?;
    let region = r.parsed("CHAT_S3_REGION", "us-east-1", |raw| Ok(raw.to_owned()))?;
    let endpoint = r.optional("CHAT_S3_ENDPOINT", |raw| {
        url::Url::parse(raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .map(|_| raw.trim_end_matches('/').to_owned())
            .ok_or_else(|| "must be an http:// or https:// URL".to_owned())
    })?;
    let credentials = match (
        r.secret("CHAT_S3_ACCESS_KEY_ID"),
        r.secret("CHAT_S3_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (None, None) => None,
        _ => {
            return Err(invalid(
                "CHAT_S3_SECRET_ACCESS_KEY",
                "set both CHAT_S3_ACCESS_KEY_ID and CHAT_S3_SECRET_ACCESS_KEY, or neither",
            ));
        }
    };
    Ok(match bucket {
        Some(bucket) => FilesConfig::S3(S3Config {
            bucket,
            region,
            endpoint,
            credentials,
        }),
        None => FilesConfig::Local(dir),
    })
}

/// Default of `CHAT_MAX_CHATS_PER_USER`.
pub const DEFAULT_MAX_CHATS_PER_USER: i64 = 1000;

/// Shortest JWT secret accepted in production (256 bits of HS256 key).
pub const MIN_PROD_SECRET_BYTES: usize = 32;
/// Lowest bcrypt cost accepted in production.
pub const MIN_PROD_BCRYPT_COST: u32 = 10;

impl Config {
    /// Reads and validates every key from the usual sources.
    pub fn load(config_file: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let sources = Sources::gather(config_file)?;
        let config = Self::from_sources(&sources)?;
        Ok((config, sources.unknown_env_keys))
    }

    /// Validates a set of sources. Pure: no I/O.
    pub fn from_sources(sources: &Sources) -> Result<Self, ConfigError> {
        Self::read(&Reader::new(sources))
    }

    /// Every key, read once, in one place: its type, default and bounds.
    fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        let env = r.choice(
            "CHAT_ENV",
            Environment::Dev,
            &[
                (&["dev", "development"], Environment::Dev),
                (&["test"], Environment::Test),
                (&["prod", "production"], Environment::Prod),
            ],
        )?;
        let bind = r.parsed("CHAT_BIND", "127.0.0.1:8080", |raw| {
            raw.parse::<SocketAddr>()
                .map_err(|_| "must be an address like 127.0.0.1:8080".to_owned())
        })?;
        let database_url = r.parsed(
            "CHAT_DATABASE_URL",
            "sqlite://data/chat.db",
            DatabaseUrl::parse,
        )?;
        let redis_url = r.optional("CHAT_REDIS_URL", redis_url)?;
        let redis_prefix = r.parsed("CHAT_REDIS_PREFIX", "chat", redis_prefix)?;
        let rate_limits = r.flag("CHAT_RATE_LIMITS", true)?;
        let access_ttl = r.duration(
            "CHAT_ACCESS_TTL",
            "15m",
            Duration::from_secs(10)..=Duration::from_secs(86_400),
        )?;
        let refresh_ttl = r.duration(
            "CHAT_REFRESH_TTL",
            "30d",
            Duration::from_secs(1)..=Duration::from_secs(366 * 86_400),
        )?;
        if refresh_ttl <= access_ttl {
            return Err(invalid(
                "CHAT_REFRESH_TTL",
                "must be longer than CHAT_ACCESS_TTL",
            ));
        }
        let bcrypt_cost = r.number("CHAT_BCRYPT_COST", 12, 4..=31)?;
        let log = r.parsed("CHAT_LOG", "info", |raw| {
            tracing_subscriber::EnvFilter::try_new(raw)
                .map(|_| raw.to_owned())
                .map_err(|e| e.to_string())
        })?;
        let allowed_origins = r
            .optional("CHAT_ALLOWED_ORIGINS", origins)?
            .unwrap_or_default();
        let direct_requires_friendship = r.flag("CHAT_DIRECT_REQUIRES_FRIENDSHIP", true)?;
        let auto_migrate = r.flag("CHAT_AUTO_MIGRATE", true)?;
        let database_pool_size = r.number("CHAT_DATABASE_POOL_SIZE", 16, 1..=1000)?;
        let database_timeout = r.duration(
            "CHAT_DATABASE_TIMEOUT",
            "5s",
            Duration::from_millis(1)..=Duration::from_secs(3600),
        )?;
        let trust_proxy_headers = r.flag("CHAT_TRUST_PROXY_HEADERS", false)?;
        let default_workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = r.number("CHAT_WORKERS", default_workers, 1..=256)?;
        let background_threads = r.number("CHAT_BACKGROUND_THREADS", default_workers, 0..=256)?;
        let db_writers = r.number("CHAT_DB_WRITERS", DEFAULT_POSTGRES_WRITERS, 1..=64)?;
        let history_cache_mb: usize = r.number("CHAT_HISTORY_CACHE_MB", 64, 0..=65_536)?;
        let sqlite_sync = r.choice(
            "CHAT_SQLITE_SYNCHRONOUS",
            SqliteSync::Full,
            &[
                (&["full"], SqliteSync::Full),
                (&["normal"], SqliteSync::Normal),
            ],
        )?;
        let presence_heartbeat = r.duration(
            "CHAT_PRESENCE_HEARTBEAT",
            "10s",
            Duration::from_millis(100)..=Duration::from_secs(600),
        )?;
        let shutdown_grace = r.duration(
            "CHAT_SHUTDOWN_GRACE",
            "10s",
            Duration::from_secs(1)..=Duration::from_secs(3600),
        )?;
        let shutdown_delay = r.duration(
            "CHAT_SHUTDOWN_DELAY",
            "1s",
            Duration::ZERO..=Duration::from_secs(3600),
        )?;
        if shutdown_delay >= shutdown_grace {
            return Err(invalid(
                "CHAT_SHUTDOWN_DELAY",
                "must be shorter than CHAT_SHUTDOWN_GRACE",
            ));
        }
        let ws_max_queued_bytes =
            r.bytes("CHAT_WS_MAX_QUEUED_BYTES", "1MiB", 16 << 10..=1 << 30)?;
        let max_sockets_per_user = r.number("CHAT_MAX_SOCKETS_PER_USER", 32, 1..=100_000)?;
        let max_chats_per_user = r.number(
            "CHAT_MAX_CHATS_PER_USER",
            DEFAULT_MAX_CHATS_PER_USER,
            1..=1_000_000,
        )?;
        let rate = |key: &'static str, limit: Limit| {
            r.optional(key, |raw| rate_limit::parse_limit(limit.name, raw))
        };
        let message_rate = rate("CHAT_RATE_MESSAGES", rate_limit::MESSAGES)?;
        let rate_overrides = [
            rate("CHAT_RATE_GROUP_CREATE", rate_limit::GROUP_CREATE)?,
            rate("CHAT_RATE_CHAT_JOIN", rate_limit::CHAT_JOIN)?,
        ]
        .into_iter()
        .flatten()
        .collect();
        let ws_frame_budget = r
            .optional("CHAT_WS_FRAME_RATE", |raw| {
                rate_limit::parse_limit("ws_frames", raw).map(|l| FrameBudget {
                    per_second: l.per_second,
                    burst: l.burst,
                })
            })?
            .unwrap_or_default();
        let max_upload_mb: usize = r.number("CHAT_MAX_UPLOAD_MB", 10, 1..=1024)?;
        let files = files(r)?;
        // Secrets are taken as written: surrounding spaces are part of a secret.
        let jwt_secret = r.secret("CHAT_JWT_SECRET");
        let jwt_secret_previous = r.secret("CHAT_JWT_SECRET_PREVIOUS");
        if jwt_secret_previous.is_some() && jwt_secret.is_none() {
            return Err(invalid(
                "CHAT_JWT_SECRET_PREVIOUS",
                "needs CHAT_JWT_SECRET (the new secret) set too",
            ));
        }

        let config = Config {
            bind,
            database_url,
            redis_url,
            redis_prefix,
            rate_limits,
            jwt_secret,
            jwt_secret_previous,
            access_ttl,
            refresh_ttl,
            bcrypt_cost,
            env,
            log,
            allowed_origins,
            direct_requires_friendship,
            auto_migrate,
            database_pool_size,
            database_timeout,
            trust_proxy_headers,
            workers,
            background_threads,
            db_writers,
            history_cache_bytes: history_cache_mb << 20,
            sqlite_sync,
            presence_heartbeat,
            ws_max_queued_bytes,
            max_sockets_per_user,
            max_chats_per_user,
            message_rate,
            rate_overrides,
            ws_frame_budget,
            shutdown_grace,
            shutdown_delay,
            max_upload_bytes: max_upload_mb << 20,
            files,
            handle_signals: true,
            ws_before_register: None,
            worker_started: None,
            login_after_password_check: None,
        };
        if config.env == Environment::Prod {
            config.refuse_insecure()?;
        }
        Ok(config)
    }

    /// What `CHAT_ENV=prod` refuses: missing or weak secrets, cheap hashes, no rate
    /// limits, any-origin browsers.
    fn refuse_insecure(&self) -> Result<(), ConfigError> {
        let weak = |secret: &Option<String>| {
            secret
                .as_ref()
                .is_some_and(|s| s.len() < MIN_PROD_SECRET_BYTES)
        };
        let short = format!("must be at least {MIN_PROD_SECRET_BYTES} bytes when CHAT_ENV=prod");
        if self.jwt_secret.is_none() {
            return Err(invalid("CHAT_JWT_SECRET", "is required when CHAT_ENV=prod"));
        }
        if weak(&self.jwt_secret) {
            return Err(invalid("CHAT_JWT_SECRET", short));
        }
        if weak(&self.jwt_secret_previous) {
            return Err(invalid("CHAT_JWT_SECRET_PREVIOUS", short));
        }
        if self.bcrypt_cost < MIN_PROD_BCRYPT_COST {
            return Err(invalid(
                "CHAT_BCRYPT_COST",
                format!("must be at least {MIN_PROD_BCRYPT_COST} when CHAT_ENV=prod"),
            ));
        }
        if !self.rate_limits {
            return Err(invalid(
                "CHAT_RATE_LIMITS",
                "'off' is refused when CHAT_ENV=prod",
            ));
        }
        if self.allowed_origins.iter().any(|o| o == "*") {
            return Err(invalid(
                "CHAT_ALLOWED_ORIGINS",
                "'*' is refused when CHAT_ENV=prod",
            ));
        }
        Ok(())
    }
}

/// `CHAT_REDIS_URL`: a `redis://`, `rediss://` or `redis+unix://` address, or a
/// comma-separated list of `redis://`/`rediss://` node addresses of a Redis Cluster.
fn redis_url(raw: &str) -> Result<String, String> {
    let nodes: Vec<&str> = raw.split(',').map(str::trim).collect();
    let schemes: &[&str] = if nodes.len() > 1 {
        &["redis://", "rediss://"]
    } else {
        &["redis://", "rediss://", "redis+unix://"]
    };
    if nodes
        .iter()
        .all(|node| schemes.iter().any(|scheme| node.starts_with(scheme)))
    {
        Ok(raw.to_owned())
    } else if nodes.len() > 1 {
        Err("each cluster node must start with redis:// or rediss://".to_owned())
    } else {
        Err("must start with redis:// or rediss://".to_owned())
    }
}

/// `CHAT_REDIS_PREFIX`: no `:`, which separates the prefix from the key.
fn redis_prefix(raw: &str) -> Result<String, String> {
    if !raw.is_empty()
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Ok(raw.to_owned())
    } else {
        Err(
            "use letters, digits, '_', '-' or '.' (no ':', which separates prefix and key)"
                .to_owned(),
        )
    }
}

/// `CHAT_ALLOWED_ORIGINS`: comma-separated `http(s)://host[:port]` origins, or `*`.
fn origins(raw: &str) -> Result<Vec<String>, String> {
    let origins: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_owned)
        .collect();
    match origins.iter().find(|o| {
        *o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/')
    }) {
        Some(bad) => Err(format!(
            "'{bad}' is not an origin like https://chat.example.com (or *)"
        )),
        None => Ok(origins),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources(&Sources::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_need_nothing_installed() -> Result<(), ConfigError> {
        let c = config(&[])?;
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.database_url,
            DatabaseUrl::parse("sqlite://data/chat.db").map_err(|m| invalid("x", m))?
        );
        assert!(c.redis_url.is_none());
        assert_eq!(c.redis_prefix, "chat");
        assert!(c.rate_limits && c.direct_requires_friendship && c.auto_migrate);
        assert_eq!(
            (c.access_ttl.as_secs(), c.refresh_ttl.as_secs()),
            (900, 30 * 86_400)
        );
        assert_eq!(c.bcrypt_cost, 12);
        assert_eq!(c.env, Environment::Dev);
        Ok(())
    }

    #[test]
    fn a_list_of_redis_nodes_is_a_cluster() -> Result<(), ConfigError> {
        let nodes = "redis://127.0.0.1:7000, redis://127.0.0.1:7001,redis://127.0.0.1:7002";
        let c = config(&[("CHAT_REDIS_URL", nodes)])?;
        assert_eq!(c.redis_url.as_deref(), Some(nodes));
        let unix = config(&[("CHAT_REDIS_URL", "redis+unix:///run/redis.sock,redis://b:1")]);
        assert!(unix.is_err(), "a cluster is reached over TCP");
        Ok(())
    }

    #[test]
    fn each_bad_value_names_its_key() {
        let cases: &[(&str, &str)] = &[
            ("CHAT_BIND", "nowhere"),
            ("CHAT_DATABASE_URL", "mysql://x"),
            ("CHAT_REDIS_URL", "http://x"),
            ("CHAT_REDIS_URL", "redis://a:7000,b:7001"),
            ("CHAT_REDIS_URL", "redis://a:7000,,redis://b:7001"),
            ("CHAT_REDIS_PREFIX", "a b"),
            ("CHAT_REDIS_PREFIX", "chat:staging"),
            ("CHAT_ACCESS_TTL", "2d"),
            ("CHAT_REFRESH_TTL", "100000000d"),
            ("CHAT_RATE_LIMITS", "maybe"),
            ("CHAT_ACCESS_TTL", "soon"),
            ("CHAT_REFRESH_TTL", "5x"),
            ("CHAT_BCRYPT_COST", "3"),
            ("CHAT_ENV", "staging"),
            ("CHAT_LOG", "info,[[["),
            ("CHAT_ALLOWED_ORIGINS", "example.com"),
            ("CHAT_DIRECT_REQUIRES_FRIENDSHIP", "sometimes"),
            ("CHAT_AUTO_MIGRATE", "2"),
            ("CHAT_DATABASE_POOL_SIZE", "0"),
            ("CHAT_DATABASE_TIMEOUT", "0"),
            ("CHAT_TRUST_PROXY_HEADERS", "x"),
            ("CHAT_WORKERS", "0"),
            ("CHAT_BACKGROUND_THREADS", "many"),
            ("CHAT_DB_WRITERS", "0"),
            ("CHAT_HISTORY_CACHE_MB", "-1"),
            ("CHAT_HISTORY_CACHE_MB", "lots"),
            ("CHAT_WS_MAX_QUEUED_BYTES", "1GB!"),
            ("CHAT_WS_MAX_QUEUED_BYTES", "100"),
            ("CHAT_SQLITE_SYNCHRONOUS", "off"),
            ("CHAT_PRESENCE_HEARTBEAT", "0"),
            ("CHAT_MAX_SOCKETS_PER_USER", "0"),
            ("CHAT_MAX_CHATS_PER_USER", "many"),
            ("CHAT_RATE_MESSAGES", "20"),
            ("CHAT_JWT_SECRET_PREVIOUS", "previous-without-a-current-one"),
            ("CHAT_RATE_GROUP_CREATE", "fast"),
            ("CHAT_RATE_CHAT_JOIN", "1/week"),
            ("CHAT_WS_FRAME_RATE", "0/s"),
        ];
        for (key, value) in cases {
            let err = config(&[(key, value)]).err();
            assert_eq!(
                err.as_ref().map(|e| e.key.as_str()),
                Some(*key),
                "{key}={value} should be refused"
            );
            let line = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                line.starts_with(&format!("invalid configuration: {key}: "))
                    && !line.contains('\n')
            );
        }
    }

    #[test]
    fn prod_refuses_missing_or_weak_secrets_and_low_cost() {
        let missing = config(&[("CHAT_ENV", "prod")]).err();
        assert_eq!(missing.map(|e| e.key), Some("CHAT_JWT_SECRET".to_owned()));
        let weak = config(&[("CHAT_ENV", "prod"), ("CHAT_JWT_SECRET", "short")]).err();
        assert_eq!(weak.map(|e| e.key), Some("CHAT_JWT_SECRET".to_owned()));
        let strong = "s".repeat(32);
        let cheap = config(&[
            ("CHAT_ENV", "prod"),
            ("CHAT_JWT_SECRET", &strong),
            ("CHAT_BCRYPT_COST", "4"),
        ])
        .err();
        assert_eq!(cheap.map(|e| e.key), Some("CHAT_BCRYPT_COST".to_owned()));
        assert!(config(&[("CHAT_ENV", "prod"), ("CHAT_JWT_SECRET", &strong)]).is_ok());
        let unlimited = config(&[
            ("CHAT_ENV", "prod"),
            ("CHAT_JWT_SECRET", &strong),
            ("CHAT_RATE_LIMITS", "off"),
        ])
        .err();
        assert_eq!(
            unlimited.map(|e| e.key),
            Some("CHAT_RATE_LIMITS".to_owned())
        );
    }

    #[test]
    fn abuse_caps_have_defaults_and_parse() -> Result<(), ConfigError> {
        let c = config(&[])?;
        assert_eq!(c.ws_max_queued_bytes, 1 << 20);
        assert_eq!(
            (c.max_sockets_per_user, c.max_chats_per_user),
            (32, DEFAULT_MAX_CHATS_PER_USER)
        );
        assert_eq!(c.message_rate, None);
        assert_eq!(
            c.sqlite_sync,
            SqliteSync::Full,
            "acknowledged means durable"
        );
        assert_eq!(c.background_threads, c.workers);
        let c = config(&[("CHAT_BACKGROUND_THREADS", "0")])?;
        assert_eq!(c.background_threads, 0);
        let c = config(&[
            ("CHAT_WS_MAX_QUEUED_BYTES", "256KiB"),
            ("CHAT_RATE_MESSAGES", "500/s:1000"),
            ("CHAT_RATE_GROUP_CREATE", "2/min:3"),
            ("CHAT_WS_FRAME_RATE", "600/s:100"),
        ])?;
        assert_eq!(c.ws_max_queued_bytes, 256 << 10);
        assert_eq!(
            c.message_rate.map(|l| (l.per_second, l.burst)),
            Some((500.0, 1000.0))
        );
        assert_eq!(c.ws_frame_budget.per_second, 600.0);
        assert_eq!(
            c.rate_overrides
                .iter()
                .map(|l| (l.name, l.burst))
                .collect::<Vec<_>>(),
            [(rate_limit::GROUP_CREATE.name, 3.0)]
        );
        Ok(())
    }

    #[test]
    fn refresh_must_outlive_access() {
        let err = config(&[("CHAT_ACCESS_TTL", "1h"), ("CHAT_REFRESH_TTL", "30m")]).err();
        assert_eq!(err.map(|e| e.key), Some("CHAT_REFRESH_TTL".to_owned()));
    }

    #[test]
    fn every_listed_key_is_read_once_and_only_listed_keys_are_read() -> Result<(), ConfigError> {
        let sources = Sources::default();
        let reader = Reader::new(&sources);
        Config::read(&reader)?;
        let mut read = reader.keys_read();
        read.sort_unstable();
        let mut listed = KEYS.to_vec();
        listed.sort_unstable();
        assert_eq!(read, listed);
        Ok(())
    }

    #[test]
    fn config_files_reject_unknown_keys() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("chat-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let good = dir.join("good.env");
        std::fs::write(&good, "CHAT_BIND=0.0.0.0:9000\n# comment\nCHAT_ENV=test\n")?;
        let mut sources = Sources::default();
        sources.merge_file(&good, true)?;
        let config = Config::from_sources(&sources)?;
        assert_eq!((config.bind.port(), config.env), (9000, Environment::Test));
        let bad = dir.join("bad.env");
        std::fs::write(&bad, "CHAT_BINDD=0.0.0.0:9000\n")?;
        let err = Sources::default().merge_file(&bad, true).err();
        assert_eq!(err.map(|e| e.key), Some("CHAT_BINDD".to_owned()));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
