//! GitHub App authentication: the app's JWT and the installation token it
//! buys, cached until shortly before it expires.
//!
//! JWTs come from `jsonwebtoken` 11 built with only its `aws_lc_rs`
//! feature: aws-lc-rs is already the crate's one crypto provider (rustls,
//! kube), so no ring and no RustCrypto `rsa` enter the tree, and without
//! `use_pem` it brings no second `pem`/ASN.1 stack — PEM framing is done by
//! the `pem` crate kube already uses. It builds on the pinned 1.95
//! toolchain (its MSRV is 1.88).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::HeaderValue;
use serde::Serialize;

use super::{ForgeError, ForgeKind};

/// How far back the JWT's `iat` is set: GitHub's advice against clock
/// drift between us and them.
const IAT_BACKDATE: Duration = Duration::from_secs(60);
/// The JWT's lifetime: GitHub refuses more than 10 minutes.
const JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);
/// An installation token is renewed this long before it expires, so that
/// a request started just before expiry does not fail.
const RENEW_BEFORE: Duration = Duration::from_secs(60);
/// Installation tokens live one hour; this bounds the cache even if our
/// clock is far behind GitHub's.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(59 * 60);
/// Used when `expires_at` cannot be read: short enough to be safe.
const FALLBACK_TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);

pub(crate) struct GitHubApp {
    pub(crate) app_id: String,
    pub(crate) installation_id: u64,
    key: EncodingKey,
    pub(crate) cache: tokio::sync::Mutex<Option<CachedToken>>,
}

impl fmt::Debug for GitHubApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubApp")
            .field("app_id", &self.app_id)
            .field("installation_id", &self.installation_id)
            .finish_non_exhaustive()
    }
}

/// An installation token and when to stop using it.
pub(crate) struct CachedToken {
    pub(crate) header: HeaderValue,
    pub(crate) renew_at: SystemTime,
}

#[derive(Serialize)]
struct Claims<'a> {
    iat: u64,
    exp: u64,
    iss: &'a str,
}

impl GitHubApp {
    /// Reads the key and signs one JWT, so that a bad key is reported when
    /// the client is built rather than at the first comment.
    pub(crate) fn new(
        app_id: String,
        installation_id: u64,
        private_key_pem: &str,
    ) -> Result<Self, ForgeError> {
        let bad = |reason: &str| ForgeError::InvalidCredentials {
            forge: ForgeKind::GitHub,
            what: "GitHub App credentials",
            reason: reason.to_string(),
        };
        if app_id.trim().is_empty() {
            return Err(bad("the app id is empty"));
        }
        // The pem crate's errors never echo the input; ours name the
        // problem only, never the key.
        let block = pem::parse(private_key_pem.trim())
            .map_err(|_| bad("the private key is not PEM (expected BEGIN RSA PRIVATE KEY)"))?;
        let key = match block.tag() {
            "RSA PRIVATE KEY" => EncodingKey::from_rsa_der(block.contents()),
            "PRIVATE KEY" => {
                return Err(bad(
                    "the private key is PKCS#8 (BEGIN PRIVATE KEY); use the PKCS#1 key GitHub \
                     issued, or convert it with `openssl rsa -in KEY -traditional`",
                ));
            }
            _ => return Err(bad("the private key is not an RSA private key")),
        };
        let app = GitHubApp {
            app_id: app_id.trim().to_string(),
            installation_id,
            key,
            cache: tokio::sync::Mutex::new(None),
        };
        app.jwt(SystemTime::now())
            .map_err(|_| bad("the private key cannot sign (is it an RSA key?)"))?;
        Ok(app)
    }

    /// The app's JWT at `now`, for `POST /app/installations/{id}/access_tokens`.
    pub(crate) fn jwt(&self, now: SystemTime) -> Result<String, ForgeError> {
        // Install aws-lc-rs explicitly: jsonwebtoken would otherwise pick
        // its provider from crate features and panic if a dependency ever
        // enabled its `rust_crypto` too. Idempotent; an earlier install wins.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let claims = Claims {
            iat: now.saturating_sub(IAT_BACKDATE).as_secs(),
            exp: (now + JWT_LIFETIME).as_secs(),
            iss: &self.app_id,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key).map_err(|e| {
            ForgeError::InvalidCredentials {
                forge: ForgeKind::GitHub,
                what: "GitHub App credentials",
                reason: format!("cannot sign the app JWT: {e}"),
            }
        })
    }
}

/// When to renew a token GitHub says expires at `expires_at` (RFC 3339),
/// fetched at `now`.
pub(crate) fn renew_at(expires_at: Option<&str>, now: SystemTime) -> SystemTime {
    let cap = now + MAX_TOKEN_LIFETIME;
    match expires_at.and_then(parse_rfc3339) {
        Some(t) => t
            .checked_sub(RENEW_BEFORE)
            .unwrap_or(UNIX_EPOCH)
            .clamp(now, cap),
        None => {
            tracing::warn!(
                "GitHub installation token without a readable expires_at; renewing it in 5 minutes"
            );
            now + FALLBACK_TOKEN_LIFETIME
        }
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, the form GitHub uses for
/// `expires_at`. A date library for this one field is not worth its weight.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let t = &rest[1..];
            if t.len() != 5 || t.as_bytes()[2] != b':' {
                return None;
            }
            let (h, m): (i64, i64) = (t[..2].parse().ok()?, t[3..].parse().ok()?);
            sign * (h * 3600 + m * 60)
        }
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc3339_times_parse() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(at(0)));
        assert_eq!(
            parse_rfc3339("2016-07-11T22:14:10Z"),
            Some(at(1_468_275_250))
        );
        assert_eq!(
            parse_rfc3339("2016-07-11T22:14:10.123Z"),
            Some(at(1_468_275_250))
        );
        assert_eq!(
            parse_rfc3339("2016-07-12T00:14:10+02:00"),
            Some(at(1_468_275_250))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00Z"),
            Some(at(1_709_208_000))
        );
        for bad in [
            "",
            "2016-07-11",
            "2016-07-11T22:14:10",
            "2016-13-11T22:14:10Z",
            "2016-07-11T22:14:10+0200",
            "2016-07-11T22:14:1xZ",
            "2016-07-11T22:14:10.Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn tokens_are_renewed_a_minute_before_they_expire() {
        let now = at(1_468_275_250 - 3600);
        assert_eq!(
            renew_at(Some("2016-07-11T22:14:10Z"), now),
            at(1_468_275_250 - 60)
        );
        // Already (nearly) expired: renew at once, never in the past.
        assert_eq!(renew_at(Some("1970-01-01T00:00:00Z"), now), now);
        // A clock far behind GitHub's cannot keep a token past an hour.
        assert_eq!(
            renew_at(Some("2099-01-01T00:00:00Z"), now),
            now + MAX_TOKEN_LIFETIME
        );
        assert_eq!(renew_at(Some("junk"), now), now + FALLBACK_TOKEN_LIFETIME);
        assert_eq!(renew_at(None, now), now + FALLBACK_TOKEN_LIFETIME);
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for pem in [
            "not a key at all SECRETBYTES",
            "-----BEGIN PRIVATE KEY-----\nU0VDUkVUQllURVM=\n-----END PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\nU0VDUkVUQllURVM=\n-----END RSA PRIVATE KEY-----\n",
            "-----BEGIN CERTIFICATE-----\nU0VDUkVUQllURVM=\n-----END CERTIFICATE-----\n",
        ] {
            let e = GitHubApp::new("1".into(), 2, pem).unwrap_err().to_string();
            assert!(!e.contains("SECRET") && !e.contains("U0VD"), "{e}");
            assert!(e.contains("GitHub App"), "{e}");
        }
        assert!(
            GitHubApp::new(" ".into(), 2, "x")
                .unwrap_err()
                .to_string()
                .contains("app id")
        );
    }
}
