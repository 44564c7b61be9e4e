//! Slack request signatures. Pure: the caller passes the time.
//! `X-Slack-Signature` = `v0=` + hex(HMAC-SHA256(secret, "v0:{timestamp}:{raw body}")),
//! and `X-Slack-Request-Timestamp` must be within five minutes of now.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::chat::signature::{Rejected, WINDOW_SECS};

/// Checks one request; `now_secs` is the current Unix time.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), Rejected> {
    let (ts, sig) = crate::chat::signature::fresh(timestamp, signature, now_secs)?;
    let hex_sig = sig.strip_prefix("v0=").ok_or(Rejected::BadSignature)?;
    let expected = hex::decode(hex_sig).map_err(|_| Rejected::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| Rejected::BadSignature)?;
    mac.update(b"v0:");
    mac.update(ts.as_bytes());
    mac.update(b":");
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&expected).map_err(|_| Rejected::BadSignature)
}

/// The signature Slack would send (tests and tools).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn accepts_a_good_signature() {
        let sig = sign(b"s3cret", "1700000000", b"a=b");
        assert_eq!(
            verify(b"s3cret", Some("1700000000"), Some(&sig), b"a=b", NOW),
            Ok(())
        );
        // Within the window on either side.
        assert_eq!(
            verify(b"s3cret", Some("1700000000"), Some(&sig), b"a=b", NOW + 300),
            Ok(())
        );
    }

    #[test]
    fn refuses_forgeries_stale_and_missing() {
        let sig = sign(b"s3cret", "1700000000", b"a=b");
        assert_eq!(
            verify(b"other", Some("1700000000"), Some(&sig), b"a=b", NOW),
            Err(Rejected::BadSignature)
        );
        assert_eq!(
            verify(b"s3cret", Some("1700000000"), Some(&sig), b"a=c", NOW),
            Err(Rejected::BadSignature)
        );
        assert_eq!(
            verify(b"s3cret", Some("1700000000"), Some(&sig), b"a=b", NOW + 301),
            Err(Rejected::Stale)
        );
        assert_eq!(
            verify(b"s3cret", Some("1700000000"), Some(&sig), b"a=b", NOW - 301),
            Err(Rejected::Stale)
        );
        assert_eq!(
            verify(b"s3cret", None, Some(&sig), b"a=b", NOW),
            Err(Rejected::Missing)
        );
        // Extreme timestamps are stale, never an overflow.
        for ts in [i64::MIN, i64::MAX] {
            let ts = ts.to_string();
            let sig = sign(b"s3cret", &ts, b"a=b");
            assert_eq!(
                verify(b"s3cret", Some(&ts), Some(&sig), b"a=b", NOW),
                Err(Rejected::Stale)
            );
        }
        assert_eq!(
            verify(b"s3cret", Some("0"), Some(&sig), b"a=b", i64::MIN),
            Err(Rejected::Stale)
        );
        assert_eq!(
            verify(b"s3cret", Some("1700000000"), Some("v0=zz"), b"a=b", NOW),
            Err(Rejected::BadSignature)
        );
        assert_eq!(
            verify(b"s3cret", Some("1700000000"), Some("v1=00"), b"a=b", NOW),
            Err(Rejected::BadSignature)
        );
    }
}
