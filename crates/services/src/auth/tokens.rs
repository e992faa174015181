//! Access tokens (HS256 JWTs naming a session) and refresh tokens (opaque
//! `session_id.secret` strings whose secret is stored only as a SHA-256 hash).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ServiceError;

/// The `typ` claim of access tokens, so no other token signed with the same key
/// (e.g. a future WebSocket ticket) can be used as one.
const ACCESS_TYPE: &str = "access";

/// HS256 signing and verification keys from the configured secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    /// Keys from the shared secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id, as a string (JWT convention).
    pub sub: String,
    /// The session id: revoking the session revokes the token.
    pub sid: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Always `access`.
    pub typ: String,
}

/// Signs an access token for `user_id` in session `sid`, valid until `exp`.
pub fn issue_access(
    keys: &JwtKeys,
    user_id: i64,
    sid: &str,
    iat: i64,
    exp: i64,
) -> Result<String, ServiceError> {
    let claims = AccessClaims {
        sub: user_id.to_string(),
        sid: sid.to_owned(),
        iat,
        exp,
        typ: ACCESS_TYPE.to_owned(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("cannot sign token: {e}")))
}

/// Checks signature, algorithm, expiry and type. Expired tokens get their own code
/// (`token_expired`) so clients know to refresh rather than log in again.
pub fn verify_access(keys: &JwtKeys, token: &str) -> Result<AccessClaims, ServiceError> {
    let mut validation = Validation::new(Algorithm::HS256);
    // Instances share one clock source in practice; a token is expired when it says so.
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let data =
        jsonwebtoken::decode::<AccessClaims>(token, &keys.decoding, &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => ServiceError::unauthorized(
                    "token_expired",
                    "the access token has expired; refresh it",
                ),
                _ => ServiceError::unauthorized("invalid_token", "the access token is invalid"),
            }
        })?;
    if data.claims.typ != ACCESS_TYPE {
        return Err(ServiceError::unauthorized(
            "invalid_token",
            "not an access token",
        ));
    }
    Ok(data.claims)
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A new session id: 16 random bytes, hex.
pub fn new_session_id() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of a refresh secret, hex: what the database keeps.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A refresh token as presented: `session_id.secret`.
pub struct RefreshToken<'a> {
    /// The session.
    pub session_id: &'a str,
    /// The current secret of the session (if the token is not a replay).
    pub secret: &'a str,
}

impl<'a> RefreshToken<'a> {
    /// Splits a presented token; malformed ones are a 401.
    pub fn parse(raw: &'a str) -> Result<Self, ServiceError> {
        raw.split_once('.')
            .filter(|(sid, secret)| {
                !sid.is_empty() && !secret.is_empty() && sid.len() <= 64 && secret.len() <= 128
            })
            .map(|(session_id, secret)| RefreshToken { session_id, secret })
            .ok_or_else(|| {
                ServiceError::unauthorized("invalid_token", "the refresh token is invalid")
            })
    }

    /// Joins the parts.
    pub fn format(session_id: &str, secret: &str) -> String {
        format!("{session_id}.{secret}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::from_secret(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn access_tokens_round_trip() -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp();
        let token = issue_access(&keys(), 7, "s1", now, now + 60)?;
        let claims = verify_access(&keys(), &token)?;
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("7", "s1"));
        Ok(())
    }

    #[test]
    fn expired_and_forged_tokens_are_refused_with_distinct_codes() -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp();
        let expired = issue_access(&keys(), 7, "s1", now - 120, now - 60)?;
        assert!(matches!(
            verify_access(&keys(), &expired),
            Err(ServiceError::Unauthorized {
                code: "token_expired",
                ..
            })
        ));
        let other = JwtKeys::from_secret(b"another secret another secret!!!");
        let forged = issue_access(&other, 7, "s1", now, now + 60)?;
        assert!(matches!(
            verify_access(&keys(), &forged),
            Err(ServiceError::Unauthorized {
                code: "invalid_token",
                ..
            })
        ));
        assert!(verify_access(&keys(), "not.a.jwt").is_err());
        Ok(())
    }

    #[test]
    fn refresh_tokens_parse() {
        let raw = RefreshToken::format("abc", "secret");
        let token = RefreshToken::parse(&raw).ok();
        assert_eq!(
            token.map(|t| (t.session_id, t.secret)),
            Some(("abc", "secret"))
        );
        assert!(RefreshToken::parse("nodot").is_err());
        assert!(RefreshToken::parse(".x").is_err());
        assert_ne!(hash_secret("a"), hash_secret("b"));
        assert_ne!(random_token(), random_token());
    }
}
