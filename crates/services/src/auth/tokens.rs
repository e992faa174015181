//! Access tokens (HS256 JWTs naming a session) and refresh tokens
//! (`session_id.generation.mac`, the MAC keyed by the server secret over the session
//! id, the generation and a per-session nonce).
//!
//! The MAC makes every refresh token verifiable on its own: a token of an older
//! generation that verifies was really issued, so presenting it is a replay (and ends
//! the session), while a forged one is merely invalid. Knowing a session id — it is in
//! every access token — is not enough to end someone's session.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_domain::UserId;
use hmac::{Hmac, Mac};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ServiceError;

/// The `typ` claim of access tokens, so no other token signed with the same key
/// (e.g. a future WebSocket ticket) can be used as one.
const ACCESS_TYPE: &str = "access";

/// HS256 signing and verification keys, and the refresh-token MAC key, from the
/// configured secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    refresh: Vec<u8>,
    /// The secret being rotated out (`CHAT_JWT_SECRET_PREVIOUS`): what it signed is
    /// still accepted; nothing new is signed with it.
    previous: Option<(DecodingKey, Vec<u8>)>,
}

impl JwtKeys {
    /// Keys from the shared secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            refresh: secret.to_vec(),
            previous: None,
        }
    }

    /// Also accepts tokens signed with `previous` (a rotation window), never signing
    /// with it.
    pub fn with_previous(mut self, previous: &[u8]) -> Self {
        self.previous = Some((DecodingKey::from_secret(previous), previous.to_vec()));
        self
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
    user_id: UserId,
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
    let mut decoded = jsonwebtoken::decode::<AccessClaims>(token, &keys.decoding, &validation);
    if let (Err(err), Some((previous, _))) = (&decoded, &keys.previous)
        && *err.kind() == ErrorKind::InvalidSignature
    {
        decoded = jsonwebtoken::decode::<AccessClaims>(token, previous, &validation);
    }
    let data = decoded.map_err(|e| match e.kind() {
        ErrorKind::ExpiredSignature => {
            ServiceError::unauthorized("token_expired", "the access token has expired; refresh it")
        }
        _ => ServiceError::unauthorized("invalid_token", "the access token is invalid"),
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

/// A refresh token as presented: `session_id.generation.mac`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken<'a> {
    /// The session (32 hex digits).
    pub session_id: &'a str,
    /// Which rotation of the session this token belongs to.
    pub generation: i64,
    /// HMAC of the above and the session's nonce.
    pub mac: &'a str,
}

fn refresh_mac(
    secret: &[u8],
    session_id: &str,
    generation: i64,
    nonce: &str,
) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    mac.update(b"refresh\0");
    mac.update(format!("{session_id}.{generation}.{nonce}").as_bytes());
    Some(mac)
}

impl<'a> RefreshToken<'a> {
    /// Splits a presented token; malformed ones are a 401.
    pub fn parse(raw: &'a str) -> Result<Self, ServiceError> {
        let invalid =
            || ServiceError::unauthorized("invalid_token", "the refresh token is invalid");
        let mut parts = raw.split('.');
        let (Some(session_id), Some(generation), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
        let generation = generation
            .parse::<i64>()
            .ok()
            .filter(|g| *g >= 0)
            .ok_or_else(invalid)?;
        if !hex(session_id) || mac.is_empty() || mac.len() > 64 {
            return Err(invalid());
        }
        Ok(RefreshToken {
            session_id,
            generation,
            mac,
        })
    }

    /// Issues the token of `generation` for a session.
    pub fn issue(
        keys: &JwtKeys,
        session_id: &str,
        generation: i64,
        nonce: &str,
    ) -> Result<String, ServiceError> {
        let mac = refresh_mac(&keys.refresh, session_id, generation, nonce)
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("refresh key unusable")))?;
        Ok(format!(
            "{session_id}.{generation}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        ))
    }

    /// Whether this token was issued by this server for a session with `nonce`
    /// (constant-time comparison), with the current secret or the one being rotated out.
    pub fn verify(&self, keys: &JwtKeys, nonce: &str) -> bool {
        let Ok(presented) = URL_SAFE_NO_PAD.decode(self.mac) else {
            return false;
        };
        let previous = keys.previous.as_ref().map(|(_, secret)| secret.as_slice());
        std::iter::once(keys.refresh.as_slice())
            .chain(previous)
            .any(|secret| {
                refresh_mac(secret, self.session_id, self.generation, nonce)
                    .is_some_and(|mac| mac.verify_slice(&presented).is_ok())
            })
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
        let token = issue_access(&keys(), UserId(7), "s1", now, now + 60)?;
        let claims = verify_access(&keys(), &token)?;
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("7", "s1"));
        Ok(())
    }

    #[test]
    fn a_rotated_out_secret_still_verifies_but_never_signs() -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp();
        let old = b"the old secret, rotated out now!";
        let signed_before =
            issue_access(&JwtKeys::from_secret(old), UserId(7), "s1", now, now + 60)?;
        let rotating = keys().with_previous(old);
        assert_eq!(verify_access(&rotating, &signed_before)?.sub, "7");
        let signed_now = issue_access(&rotating, UserId(7), "s1", now, now + 60)?;
        assert!(
            verify_access(&JwtKeys::from_secret(old), &signed_now).is_err(),
            "new tokens are signed with the current secret"
        );
        assert!(verify_access(&keys(), &signed_now).is_ok());
        assert!(
            verify_access(&keys(), &signed_before).is_err(),
            "after the window"
        );
        let refresh = RefreshToken::issue(&JwtKeys::from_secret(old), &"a".repeat(32), 1, "n")?;
        let parsed = RefreshToken::parse(&refresh)?;
        assert!(parsed.verify(&rotating, "n"));
        assert!(!parsed.verify(&keys(), "n"));
        Ok(())
    }

    #[test]
    fn expired_and_forged_tokens_are_refused_with_distinct_codes() -> anyhow::Result<()> {
        let now = chrono::Utc::now().timestamp();
        let expired = issue_access(&keys(), UserId(7), "s1", now - 120, now - 60)?;
        assert!(matches!(
            verify_access(&keys(), &expired),
            Err(ServiceError::Unauthorized {
                code: "token_expired",
                ..
            })
        ));
        let other = JwtKeys::from_secret(b"another secret another secret!!!");
        let forged = issue_access(&other, UserId(7), "s1", now, now + 60)?;
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
    fn refresh_tokens_verify_only_with_their_session_nonce_and_generation() -> anyhow::Result<()> {
        let sid = new_session_id();
        let raw = RefreshToken::issue(&keys(), &sid, 3, "nonce")?;
        let token = RefreshToken::parse(&raw)?;
        assert_eq!((token.session_id, token.generation), (sid.as_str(), 3));
        assert!(token.verify(&keys(), "nonce"));
        assert!(!token.verify(&keys(), "other nonce"));
        assert!(!token.verify(
            &JwtKeys::from_secret(b"another secret another secret!!!"),
            "nonce"
        ));
        // Claiming another generation with the same MAC does not verify.
        let forged = raw.replacen(".3.", ".2.", 1);
        assert!(!RefreshToken::parse(&forged)?.verify(&keys(), "nonce"));
        for bad in [
            "nodot".to_owned(),
            "a.b".to_owned(),
            format!("{sid}.x.mac"),
            format!("{sid}.-1.mac"),
            "zz.1.mac".to_owned(),
            format!("{sid}.1.mac.extra"),
        ] {
            assert!(RefreshToken::parse(&bad).is_err(), "{bad}");
        }
        assert_ne!(random_token(), random_token());
        Ok(())
    }
}
