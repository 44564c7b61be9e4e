//! What every platform's request signature check shares: the reasons for a
//! refusal and the five-minute window on the request's timestamp. Pure.

/// How far a request's timestamp may be from now, in seconds.
pub const WINDOW_SECS: i64 = 300;

/// Why a request was refused. Never shown to the caller (it gets a bare 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("missing signature headers")]
    Missing,
    #[error("timestamp outside the five-minute window")]
    Stale,
    #[error("signature does not match")]
    BadSignature,
}

/// Both headers, with a timestamp (Unix seconds) within [`WINDOW_SECS`] of
/// `now_secs`: `(timestamp, signature)`.
pub fn fresh<'a>(
    timestamp: Option<&'a str>,
    signature: Option<&'a str>,
    now_secs: i64,
) -> Result<(&'a str, &'a str), Rejected> {
    let (Some(ts), Some(sig)) = (timestamp, signature) else {
        return Err(Rejected::Missing);
    };
    let ts_num: i64 = ts.parse().map_err(|_| Rejected::Missing)?;
    // abs_diff: any i64 pair, no overflow (a timestamp of i64::MIN is just stale).
    if now_secs.abs_diff(ts_num) > WINDOW_SECS.unsigned_abs() {
        return Err(Rejected::Stale);
    }
    Ok((ts, sig))
}

/// Checks a request's signature headers `ts_header` and `sig_header` with
/// `check` (timestamp, signature → verdict), logging why a request was refused.
pub fn verified(
    headers: &axum::http::HeaderMap,
    ts_header: &str,
    sig_header: &str,
    platform: &str,
    check: impl FnOnce(Option<&str>, Option<&str>) -> Result<(), Rejected>,
) -> bool {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match check(h(ts_header), h(sig_header)) {
        Ok(()) => true,
        Err(why) => {
            tracing::debug!(%why, platform, "request refused");
            false
        }
    }
}
