//! Discord request signatures. Pure: the caller passes the time.
//! `X-Signature-Ed25519` = hex(Ed25519(application key, timestamp + raw body)),
//! checked by serenity's [`Verifier`]; serenity does not look at the
//! timestamp's age, so `X-Signature-Timestamp` must also be within five
//! minutes of now (a replayed request is refused like a forged one).

use serenity::interactions_endpoint::Verifier;

pub use crate::chat::signature::{Rejected, WINDOW_SECS};

/// The verifier for the application's public key (64 hex digits, from the
/// Developer Portal), or why the key is unusable.
pub fn verifier(public_key_hex: &str) -> Result<Verifier, String> {
    let bytes =
        hex::decode(public_key_hex.trim()).map_err(|_| "DISCORD_PUBLIC_KEY is not hex".to_string())?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "DISCORD_PUBLIC_KEY must be 64 hex digits (32 bytes)".to_string())?;
    Verifier::try_new(key).map_err(|e| format!("DISCORD_PUBLIC_KEY: {e}"))
}

/// Checks one request; `now_secs` is the current Unix time.
pub fn verify(
    verifier: &Verifier,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), Rejected> {
    let (ts, sig) = crate::chat::signature::fresh(timestamp, signature, now_secs)?;
    verifier.verify(sig, ts, body).map_err(|_| Rejected::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const NOW: i64 = 1_700_000_000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn sign(k: &SigningKey, ts: &str, body: &[u8]) -> String {
        let mut msg = ts.as_bytes().to_vec();
        msg.extend_from_slice(body);
        hex::encode(k.sign(&msg).to_bytes())
    }

    fn verifier_of(k: &SigningKey) -> Verifier {
        verifier(&hex::encode(k.verifying_key().to_bytes())).unwrap()
    }

    #[test]
    fn accepts_a_good_signature_within_the_window() {
        let k = key(7);
        let v = verifier_of(&k);
        let sig = sign(&k, "1700000000", b"{}");
        assert_eq!(verify(&v, Some("1700000000"), Some(&sig), b"{}", NOW), Ok(()));
        assert_eq!(
            verify(&v, Some("1700000000"), Some(&sig), b"{}", NOW - 300),
            Ok(())
        );
    }

    #[test]
    fn refuses_forged_wrong_key_stale_and_missing() {
        let k = key(7);
        let v = verifier_of(&k);
        let sig = sign(&k, "1700000000", b"{}");
        let other = sign(&key(8), "1700000000", b"{}");
        let cases = [
            (
                Some("1700000000"),
                Some(other.as_str()),
                &b"{}"[..],
                NOW,
                Rejected::BadSignature,
            ),
            (
                Some("1700000000"),
                Some(sig.as_str()),
                b"{ }",
                NOW,
                Rejected::BadSignature,
            ),
            (Some("1700000000"), Some("00"), b"{}", NOW, Rejected::BadSignature),
            (Some("1700000000"), Some("zz"), b"{}", NOW, Rejected::BadSignature),
            (
                Some("1700000000"),
                Some(sig.as_str()),
                b"{}",
                NOW + 301,
                Rejected::Stale,
            ),
            (
                Some("1700000000"),
                Some(sig.as_str()),
                b"{}",
                NOW - 301,
                Rejected::Stale,
            ),
            (None, Some(sig.as_str()), b"{}", NOW, Rejected::Missing),
            (Some("soon"), Some(sig.as_str()), b"{}", NOW, Rejected::Missing),
        ];
        for (ts, sig, body, now, want) in cases {
            assert_eq!(verify(&v, ts, sig, body, now), Err(want), "{ts:?} {sig:?}");
        }
    }

    #[test]
    fn bad_keys_are_explained() {
        assert!(verifier("zz").is_err());
        assert!(verifier("abcd").is_err());
        assert!(verifier(&hex::encode(key(1).verifying_key().to_bytes())).is_ok());
    }
}
