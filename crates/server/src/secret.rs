//! The JWT signing secret. Configured in production; in dev/test, generated once
//! and kept in a file beside the SQLite database (mode 0600), so restarting the
//! server does not log everyone out.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_db::DatabaseUrl;

use crate::Config;

/// Name of the generated secret's file.
const SECRET_FILE: &str = "jwt_secret";

/// Where a generated secret lives: beside the SQLite file, or `data/` otherwise.
fn secret_path(config: &Config) -> PathBuf {
    match &config.database_url {
        DatabaseUrl::Sqlite(path) => path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from(SECRET_FILE), |d| d.join(SECRET_FILE)),
        DatabaseUrl::Postgres(_) => PathBuf::from("data").join(SECRET_FILE),
    }
}

/// The configured secret, or the kept one, or a new one (written with mode 0600).
pub(crate) fn resolve(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.jwt_secret {
        if secret.len() < crate::config::MIN_PROD_SECRET_BYTES {
            tracing::warn!("CHAT_JWT_SECRET is shorter than 32 bytes; production refuses this");
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = secret_path(config);
    match std::fs::read_to_string(&path) {
        Ok(kept) if !kept.trim().is_empty() => return Ok(kept.trim().as_bytes().to_vec()),
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it or set CHAT_JWT_SECRET",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 48]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    tracing::info!(path = %path.display(), "generated a JWT secret (set CHAT_JWT_SECRET to choose one)");
    Ok(secret.into_bytes())
}
