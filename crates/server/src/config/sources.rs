//! Where configuration comes from: defaults, `.env`, a `--config` file and the process
//! environment, merged by precedence into one key/value map.

use std::collections::BTreeMap;
use std::path::Path;

use super::ConfigError;

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
    "CHAT_BACKGROUND_THREADS",
    "CHAT_DB_WRITERS",
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
    "CHAT_MAX_UPLOAD_MB",
    "CHAT_ATTACHMENTS_DIR",
    "CHAT_S3_BUCKET",
    "CHAT_S3_REGION",
    "CHAT_S3_ENDPOINT",
    "CHAT_S3_ACCESS_KEY_ID",
    "CHAT_S3_SECRET_ACCESS_KEY",
];

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

    pub(super) fn merge_file(&mut self, path: &Path, strict: bool) -> Result<(), ConfigError> {
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

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}
