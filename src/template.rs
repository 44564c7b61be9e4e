//! `{name}` placeholders in catalog strings. Pure. Each executor decides how a
//! value is escaped for its medium; this module only finds and replaces.

/// Names of the placeholders in `s`, in order (`{queue}` → `queue`,
/// `{response.retried}` → `response.retried`). Braces around anything that is
/// not a plain name (JSON, spaces) are left alone.
pub fn placeholders(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    scan(s, |name| {
        out.push(name);
        None
    });
    out
}

/// The name when `s` is exactly one placeholder, like `"{section}"`.
pub fn sole_placeholder(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('{')?.strip_suffix('}')?;
    is_name(inner).then_some(inner)
}

/// Replaces each placeholder with `f(name)`; a placeholder for which `f`
/// returns `None` is kept as written.
pub fn render(s: &str, mut f: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut pieces: Vec<(usize, usize, Option<String>)> = Vec::new();
    scan(s, |name| {
        // Offsets are recovered from the slice position inside `s`.
        let start = name.as_ptr() as usize - s.as_ptr() as usize - 1;
        pieces.push((start, start + name.len() + 2, f(name)));
        None
    });
    for (start, end, value) in pieces {
        out.push_str(&s[last..start]);
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&s[start..end]),
        }
        last = end;
    }
    out.push_str(&s[last..]);
    out
}

fn scan<'a>(s: &'a str, mut visit: impl FnMut(&'a str) -> Option<()>) {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' {
            if let Some(len) = s[i + 1..].find('}') {
                let inner = &s[i + 1..i + 1 + len];
                if is_name(inner) {
                    visit(inner);
                    i += len + 2;
                    continue;
                }
            }
        }
        i += 1;
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '<' | '>'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_and_ignores_json_braces() {
        assert_eq!(
            placeholders("/api/{queue}/x?{a.b} {\"k\": 1} { no }"),
            vec!["queue", "a.b"]
        );
    }

    #[test]
    fn renders_and_keeps_unknown() {
        let r = render("retried {n} in {queue} {missing}", |n| match n {
            "n" => Some("3".into()),
            "queue" => Some("ai".into()),
            _ => None,
        });
        assert_eq!(r, "retried 3 in ai {missing}");
    }

    #[test]
    fn sole() {
        assert_eq!(sole_placeholder("{section}"), Some("section"));
        assert_eq!(sole_placeholder("x{section}"), None);
    }
}
