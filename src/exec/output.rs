//! What leaves an executor: secrets redacted, then truncated to a size chat can show.

use secrecy::{ExposeSecret, SecretString};
use std::sync::RwLock;

/// Replaces every known secret value with `[redacted]`.
///
/// Starts with the secrets given to [`Redactor::new`]; executors add values they
/// learn at run time (header values read from `env:NAME`, DSN passwords).
/// Values shorter than 4 characters are ignored: redacting them would mangle
/// ordinary text without protecting anything.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: RwLock<Vec<String>>,
}

/// Shortest value treated as a secret.
const MIN_SECRET_LEN: usize = 4;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

impl Redactor {
    /// A redactor for `secrets` (empty and too-short values are skipped).
    pub fn new(secrets: Vec<SecretString>) -> Self {
        let r = Redactor::default();
        for s in secrets {
            r.add(s.expose_secret());
        }
        r
    }

    /// Adds one more secret value; longer secrets are replaced first so that a
    /// secret containing another is redacted whole.
    pub fn add(&self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_LEN {
            return;
        }
        let mut list = match self.secrets.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !list.iter().any(|s| s == secret) {
            list.push(secret.to_string());
            list.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `s` with every known secret value replaced by `[redacted]`.
    pub fn redact(&self, s: &str) -> String {
        let list = match self.secrets.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = s.to_string();
        for secret in list.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// Redacts every string (and object key) inside a JSON value.
    pub fn redact_json(&self, v: &serde_json::Value, max_chars: usize) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(truncate(&self.redact(s), max_chars)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.redact_json(x, max_chars)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (self.redact(k), self.redact_json(x, max_chars)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// `s` cut to at most `max_chars` characters (never inside a character), followed
/// by a marker such as `… [truncated 1234 chars]` when anything was cut.
pub fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        None => s.to_string(),
        Some((cut, _)) => {
            let dropped = s[cut..].chars().count();
            format!("{}… [truncated {dropped} chars]", &s[..cut])
        }
    }
}

/// One line: control characters (CR, LF, tabs) shown escaped, at most `max_chars`.
pub fn one_line(s: &str, max_chars: usize) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    truncate(&escaped, max_chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundary_with_marker() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo wörld", 4), "héll… [truncated 7 chars]");
        assert_eq!(truncate("ééé", 0), "… [truncated 3 chars]");
    }

    #[test]
    fn redacts_known_secrets_longest_first() {
        let r = Redactor::new(vec![
            SecretString::from("abc"),
            SecretString::from("token123"),
            SecretString::from("token123456"),
        ]);
        assert_eq!(
            r.redact("a token123456 b token123 abc"),
            "a [redacted] b [redacted] abc"
        );
        r.add("abcd");
        assert_eq!(r.redact("abcde"), "[redacted]e");
    }

    #[test]
    fn one_line_escapes_controls() {
        assert_eq!(one_line("a\r\nb", 100), "a\\r\\nb");
    }
}
