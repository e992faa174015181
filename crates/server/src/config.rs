//! Configuration (SPEC §2): `CHAT_*` keys from the environment, over an optional
//! `--config` file, over an optional `.env` file, over defaults that need nothing
//! installed. Every value is checked here, at start-up; a bad one stops the server
//! with one line naming the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chat_db::{DatabaseUrl, SqliteSync};
use chat_services::TestHook;
use chat_services::rate_limit::{self, Limit};
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

/// Every key this server reads.
pub const KEYS: &[&str] = &[
    "CHAT_BIND",
    "CHAT_DATABASE_URL",
    "CHAT_REDIS_URL",
    "CHAT_REDIS_PREFIX",
    "CHAT_RATE_LIMITS",
    "CHAT_JWT_SECRET",
    "CHAT_JWT_SECRET_PREVIOUS",
    "CHAT_ACCESS_TTL",
    "CHAT_REFRESH_TTL",
    "CHAT_BCRYPT_COST",
    "CHAT_ENV",
    "CHAT_LOG",
    "CHAT_ALLOWED_ORIGINS",
    "CHAT_DIRECT_REQUIRES_FRIENDSHIP",
    "CHAT_AUTO_MIGRATE",
    "CHAT_DATABASE_POOL_SIZE",
    "CHAT_DATABASE_TIMEOUT",
    "CHAT_TRUST_PROXY_HEADERS",
    "CHAT_WORKERS",
    "CHAT_HISTORY_CACHE_MB",
    "CHAT_WS_MAX_QUEUED_BYTES",
    "CHAT_SQLITE_SYNCHRONOUS",
    "CHAT_PRESENCE_HEARTBEAT",
    "CHAT_MAX_SOCKETS_PER_USER",
    "CHAT_MAX_CHATS_PER_USER",
    "CHAT_RATE_MESSAGES",
    "CHAT_RATE_GROUP_CREATE",
    "CHAT_RATE_CHAT_JOIN",
    "CHAT_WS_FRAME_RATE",
    "CHAT_SHUTDOWN_GRACE",
    "CHAT_SHUTDOWN_DELAY",
];

/// Default of `CHAT_MAX_CHATS_PER_USER`.
pub const DEFAULT_MAX_CHATS_PER_USER: i64 = 1000;

/// Shortest JWT secret accepted in production (256 bits of HS256 key).
pub const MIN_PROD_SECRET_BYTES: usize = 32;
/// Lowest bcrypt cost accepted in production.
pub const MIN_PROD_BCRYPT_COST: u32 = 10;

/// The raw key/value sources, lowest precedence first.
#[derive(Debug, Default)]
pub struct Sources {
    values: BTreeMap<String, String>,
    /// Keys in the environment that look like ours but are not (likely typos).
    pub unknown_env_keys: Vec<String>,
}

impl Sources {
    /// `.env` (if present, in the working directory), then `config_file`, then the
    /// process environment. The config file uses the same `KEY=value` syntax as `.env`.
    pub fn gather(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut sources = Sources::default();
        if Path::new(".env").is_file() {
            sources.merge_file(Path::new(".env"), false)?;
        }
        if let Some(path) = config_file {
            sources.merge_file(path, true)?;
        }
        for (key, value) in std::env::vars() {
            if key.starts_with("CHAT_") {
                if KEYS.contains(&key.as_str()) {
                    sources.values.insert(key, value);
                } else {
                    sources.unknown_env_keys.push(key);
                }
            }
        }
        Ok(sources)
    }

    /// Sources from explicit pairs (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Sources {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            unknown_env_keys: Vec::new(),
        }
    }

    fn merge_file(&mut self, path: &Path, strict: bool) -> Result<(), ConfigError> {
        let file_error = |message: String| ConfigError {
            key: path.display().to_string(),
            message,
        };
        let entries = dotenvy::from_path_iter(path).map_err(|e| file_error(e.to_string()))?;
        for entry in entries {
            let (key, value) = entry.map_err(|e| file_error(e.to_string()))?;
            if KEYS.contains(&key.as_str()) {
                self.values.insert(key, value);
            } else if strict {
                return Err(ConfigError {
                    key,
                    message: format!("unknown key in {}", path.display()),
                });
            }
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Parses `90`, `90s`, `15m`, `12h`, `30d`, `500ms`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{raw}' is not a duration (e.g. 900, 15m, 30d)"))?;
    let seconds = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit '{other}' (use ms, s, m, h or d)")),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{raw}' is too long"))
}

/// Parses a size in bytes: `1048576`, `512KiB`, `1MiB` (also `k`, `KB`, `M`, `MB`:
/// binary multiples).
pub fn parse_bytes(raw: &str) -> Result<usize, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let n: usize = number
        .parse()
        .map_err(|_| format!("'{raw}' is not a size (e.g. 1048576, 512KiB, 1MiB)"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        other => return Err(format!("unknown unit '{other}' (use KiB or MiB)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("'{raw}' is too large"))
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(format!("'{other}' is not a boolean (true/false, on/off)")),
    }
}

impl Config {
    /// Reads and validates every key from the usual sources.
    pub fn load(config_file: Option<&Path>) -> Result<(Self, Vec<String>), ConfigError> {
        let sources = Sources::gather(config_file)?;
        let config = Self::from_sources(&sources)?;
        Ok((config, sources.unknown_env_keys))
    }

    /// Validates a set of sources. Pure: no I/O.
    pub fn from_sources(sources: &Sources) -> Result<Self, ConfigError> {
        let get = |key: &str| sources.get(key);
        let env = match get("CHAT_ENV")
            .unwrap_or("dev")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "dev" | "development" => Environment::Dev,
            "test" => Environment::Test,
            "prod" | "production" => Environment::Prod,
            other => {
                return Err(invalid(
                    "CHAT_ENV",
                    format!("'{other}' is not one of dev, test, prod"),
                ));
            }
        };
        let bind = get("CHAT_BIND")
            .unwrap_or("127.0.0.1:8080")
            .trim()
            .parse::<SocketAddr>()
            .map_err(|_| invalid("CHAT_BIND", "must be an address like 127.0.0.1:8080"))?;
        let database_url = DatabaseUrl::parse(
            get("CHAT_DATABASE_URL")
                .unwrap_or("sqlite://data/chat.db")
                .trim(),
        )
        .map_err(|m| invalid("CHAT_DATABASE_URL", m))?;
        let redis_url = match get("CHAT_REDIS_URL").map(str::trim) {
            None => None,
            Some(url)
                if url.starts_with("redis://")
                    || url.starts_with("rediss://")
                    || url.starts_with("redis+unix://") =>
            {
                Some(url.to_owned())
            }
            Some(_) => {
                return Err(invalid(
                    "CHAT_REDIS_URL",
                    "must start with redis:// or rediss://",
                ));
            }
        };
        let redis_prefix = get("CHAT_REDIS_PREFIX").unwrap_or("chat").trim().to_owned();
        if redis_prefix.is_empty()
            || !redis_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(invalid(
                "CHAT_REDIS_PREFIX",
                "use letters, digits, '_', '-' or '.' (no ':', which separates prefix and key)",
            ));
        }
        let rate_limits = parse_bool(get("CHAT_RATE_LIMITS").unwrap_or("on"))
            .map_err(|m| invalid("CHAT_RATE_LIMITS", m))?;
        let access_ttl = parse_duration(get("CHAT_ACCESS_TTL").unwrap_or("15m"))
            .map_err(|m| invalid("CHAT_ACCESS_TTL", m))?;
        let refresh_ttl = parse_duration(get("CHAT_REFRESH_TTL").unwrap_or("30d"))
            .map_err(|m| invalid("CHAT_REFRESH_TTL", m))?;
        if access_ttl < Duration::from_secs(10) || access_ttl > Duration::from_secs(86_400) {
            return Err(invalid(
                "CHAT_ACCESS_TTL",
                "must be between 10 seconds and 1 day",
            ));
        }
        if refresh_ttl > Duration::from_secs(366 * 86_400) {
            return Err(invalid("CHAT_REFRESH_TTL", "must be at most 366 days"));
        }
        if refresh_ttl <= access_ttl {
            return Err(invalid(
                "CHAT_REFRESH_TTL",
                "must be longer than CHAT_ACCESS_TTL",
            ));
        }
        let bcrypt_cost: u32 = get("CHAT_BCRYPT_COST")
            .unwrap_or("12")
            .trim()
            .parse()
            .ok()
            .filter(|c| (4..=31).contains(c))
            .ok_or_else(|| invalid("CHAT_BCRYPT_COST", "must be a number from 4 to 31"))?;
        let log = get("CHAT_LOG").unwrap_or("info").trim().to_owned();
        tracing_subscriber::EnvFilter::try_new(&log)
            .map_err(|e| invalid("CHAT_LOG", e.to_string()))?;
        let allowed_origins = get("CHAT_ALLOWED_ORIGINS")
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if let Some(bad) = allowed_origins.iter().find(|o| {
            *o != "*" && !(o.starts_with("http://") || o.starts_with("https://"))
                || o.ends_with('/')
        }) {
            return Err(invalid(
                "CHAT_ALLOWED_ORIGINS",
                format!("'{bad}' is not an origin like https://chat.example.com (or *)"),
            ));
        }
        let direct_requires_friendship =
            parse_bool(get("CHAT_DIRECT_REQUIRES_FRIENDSHIP").unwrap_or("true"))
                .map_err(|m| invalid("CHAT_DIRECT_REQUIRES_FRIENDSHIP", m))?;
        let auto_migrate = parse_bool(get("CHAT_AUTO_MIGRATE").unwrap_or("true"))
            .map_err(|m| invalid("CHAT_AUTO_MIGRATE", m))?;
        let database_pool_size: u32 = get("CHAT_DATABASE_POOL_SIZE")
            .unwrap_or("16")
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| invalid("CHAT_DATABASE_POOL_SIZE", "must be a number from 1 to 1000"))?;
        let database_timeout = parse_duration(get("CHAT_DATABASE_TIMEOUT").unwrap_or("5s"))
            .map_err(|m| invalid("CHAT_DATABASE_TIMEOUT", m))?;
        if database_timeout.is_zero() {
            return Err(invalid("CHAT_DATABASE_TIMEOUT", "must be more than 0"));
        }
        let trust_proxy_headers = parse_bool(get("CHAT_TRUST_PROXY_HEADERS").unwrap_or("false"))
            .map_err(|m| invalid("CHAT_TRUST_PROXY_HEADERS", m))?;
        let default_workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let workers = match get("CHAT_WORKERS") {
            None => default_workers,
            Some(raw) => raw
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| invalid("CHAT_WORKERS", "must be a number from 1 to 256"))?,
        };
        let history_cache_mb: usize = get("CHAT_HISTORY_CACHE_MB")
            .unwrap_or("64")
            .trim()
            .parse()
            .ok()
            .filter(|n| *n <= 65_536)
            .ok_or_else(|| {
                invalid(
                    "CHAT_HISTORY_CACHE_MB",
                    "must be a number from 0 (off) to 65536",
                )
            })?;
        let sqlite_sync = match get("CHAT_SQLITE_SYNCHRONOUS")
            .unwrap_or("full")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "full" => SqliteSync::Full,
            "normal" => SqliteSync::Normal,
            other => {
                return Err(invalid(
                    "CHAT_SQLITE_SYNCHRONOUS",
                    format!("'{other}' is not one of full, normal"),
                ));
            }
        };
        let presence_heartbeat = parse_duration(get("CHAT_PRESENCE_HEARTBEAT").unwrap_or("10s"))
            .map_err(|m| invalid("CHAT_PRESENCE_HEARTBEAT", m))?;
        if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&presence_heartbeat) {
            return Err(invalid(
                "CHAT_PRESENCE_HEARTBEAT",
                "must be between 100ms and 10m",
            ));
        }
        let shutdown_grace = parse_duration(get("CHAT_SHUTDOWN_GRACE").unwrap_or("10s"))
            .map_err(|m| invalid("CHAT_SHUTDOWN_GRACE", m))?;
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&shutdown_grace) {
            return Err(invalid("CHAT_SHUTDOWN_GRACE", "must be between 1s and 1h"));
        }
        let shutdown_delay = parse_duration(get("CHAT_SHUTDOWN_DELAY").unwrap_or("1s"))
            .map_err(|m| invalid("CHAT_SHUTDOWN_DELAY", m))?;
        if shutdown_delay >= shutdown_grace {
            return Err(invalid(
                "CHAT_SHUTDOWN_DELAY",
                "must be shorter than CHAT_SHUTDOWN_GRACE",
            ));
        }
        let ws_max_queued_bytes = parse_bytes(get("CHAT_WS_MAX_QUEUED_BYTES").unwrap_or("1MiB"))
            .map_err(|m| invalid("CHAT_WS_MAX_QUEUED_BYTES", m))?;
        if !(16 << 10..=1 << 30).contains(&ws_max_queued_bytes) {
            return Err(invalid(
                "CHAT_WS_MAX_QUEUED_BYTES",
                "must be between 16KiB and 1024MiB",
            ));
        }
        let max_sockets_per_user: usize = get("CHAT_MAX_SOCKETS_PER_USER")
            .unwrap_or("32")
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| {
                invalid(
                    "CHAT_MAX_SOCKETS_PER_USER",
                    "must be a number from 1 to 100000",
                )
            })?;
        let max_chats_per_user: i64 = match get("CHAT_MAX_CHATS_PER_USER") {
            None => DEFAULT_MAX_CHATS_PER_USER,
            Some(raw) => raw
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "CHAT_MAX_CHATS_PER_USER",
                        "must be a number from 1 to 1000000",
                    )
                })?,
        };
        let rate = |key: &str, limit: Limit| {
            get(key)
                .map(|raw| rate_limit::parse_limit(limit.name, raw))
                .transpose()
                .map_err(|m| invalid(key, m))
        };
        let message_rate = rate("CHAT_RATE_MESSAGES", rate_limit::MESSAGES)?;
        let rate_overrides = [
            rate("CHAT_RATE_GROUP_CREATE", rate_limit::GROUP_CREATE)?,
            rate("CHAT_RATE_CHAT_JOIN", rate_limit::CHAT_JOIN)?,
        ]
        .into_iter()
        .flatten()
        .collect();
        let ws_frame_budget = match get("CHAT_WS_FRAME_RATE") {
            None => FrameBudget::default(),
            Some(raw) => rate_limit::parse_limit("ws_frames", raw)
                .map(|l| FrameBudget {
                    per_second: l.per_second,
                    burst: l.burst,
                })
                .map_err(|m| invalid("CHAT_WS_FRAME_RATE", m))?,
        };
        let jwt_secret = get("CHAT_JWT_SECRET").map(str::to_owned);
        let jwt_secret_previous = get("CHAT_JWT_SECRET_PREVIOUS").map(str::to_owned);
        if jwt_secret_previous.is_some() && jwt_secret.is_none() {
            return Err(invalid(
                "CHAT_JWT_SECRET_PREVIOUS",
                "needs CHAT_JWT_SECRET (the new secret) set too",
            ));
        }

        if env == Environment::Prod {
            match &jwt_secret {
                None => return Err(invalid("CHAT_JWT_SECRET", "is required when CHAT_ENV=prod")),
                Some(s) if s.len() < MIN_PROD_SECRET_BYTES => {
                    return Err(invalid(
                        "CHAT_JWT_SECRET",
                        format!(
                            "must be at least {MIN_PROD_SECRET_BYTES} bytes when CHAT_ENV=prod"
                        ),
                    ));
                }
                Some(_) => {}
            }
            if jwt_secret_previous
                .as_ref()
                .is_some_and(|s| s.len() < MIN_PROD_SECRET_BYTES)
            {
                return Err(invalid(
                    "CHAT_JWT_SECRET_PREVIOUS",
                    format!("must be at least {MIN_PROD_SECRET_BYTES} bytes when CHAT_ENV=prod"),
                ));
            }
            if bcrypt_cost < MIN_PROD_BCRYPT_COST {
                return Err(invalid(
                    "CHAT_BCRYPT_COST",
                    format!("must be at least {MIN_PROD_BCRYPT_COST} when CHAT_ENV=prod"),
                ));
            }
            if !rate_limits {
                return Err(invalid(
                    "CHAT_RATE_LIMITS",
                    "'off' is refused when CHAT_ENV=prod",
                ));
            }
            if allowed_origins.iter().any(|o| o == "*") {
                return Err(invalid(
                    "CHAT_ALLOWED_ORIGINS",
                    "'*' is refused when CHAT_ENV=prod",
                ));
            }
        }

        Ok(Config {
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
            handle_signals: true,
            ws_before_register: None,
            worker_started: None,
            login_after_password_check: None,
        })
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
    fn each_bad_value_names_its_key() {
        let cases: &[(&str, &str)] = &[
            ("CHAT_BIND", "nowhere"),
            ("CHAT_DATABASE_URL", "mysql://x"),
            ("CHAT_REDIS_URL", "http://x"),
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
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5 weeks").is_err());
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
