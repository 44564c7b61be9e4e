//! Typing and normalizing argument values per `ArgKind`. Errors are sentences
//! about the value, ready to be shown (the caller adds the usage line).

use super::suggest;
use crate::catalog::ArgKind;

/// Validates `raw` as argument `arg` of kind `kind`; returns the normalized
/// value (durations formatted, ints canonical, enum case fixed, lists joined
/// with `,`) or why it was refused.
pub(crate) fn check(kind: &ArgKind, arg: &str, raw: &str) -> Result<String, String> {
    match kind {
        ArgKind::Enum(values) => check_enum(values, arg, raw),
        ArgKind::Int { min, max } => check_int(*min, *max, arg, raw),
        ArgKind::Duration => crate::duration::parse(raw)
            .map(crate::duration::format)
            .map_err(|e| format!("{arg}: {e}")),
        ArgKind::String { max_len, pattern } => {
            let n = raw.chars().count();
            if n > *max_len {
                return Err(format!("{arg} is too long ({n} characters, at most {max_len})"));
            }
            match pattern {
                Some(re) if !re.is_match(raw) => Err(format!(
                    "{arg} `{}` does not have the expected form `{}`",
                    shown(raw),
                    pattern_text(re)
                )),
                _ => Ok(raw.to_string()),
            }
        }
        ArgKind::Id if is_id(raw) => Ok(raw.to_string()),
        ArgKind::Id => Err(format!(
            "`{}` is not a valid {arg}: use 1 to 64 letters, digits or _ . : -",
            shown(raw)
        )),
        ArgKind::Ip { protected } => crate::ip::check(arg, raw, protected),
        ArgKind::Bool => check_bool(arg, raw),
        ArgKind::List(inner) => check_list(inner, arg, raw),
    }
}

fn check_enum(values: &[String], arg: &str, raw: &str) -> Result<String, String> {
    if let Some(v) = values.iter().find(|v| v.eq_ignore_ascii_case(raw)) {
        return Ok(v.clone());
    }
    let allowed = values.join(", ");
    let hint = suggest::closest(raw, values.iter().map(String::as_str))
        .map(|s| format!(" Did you mean `{s}`?"))
        .unwrap_or_default();
    Err(format!(
        "`{}` is not a valid {arg}.{hint} Allowed: {allowed}",
        shown(raw)
    ))
}

fn check_int(min: i64, max: i64, arg: &str, raw: &str) -> Result<String, String> {
    let range = match (min, max) {
        (i64::MIN, i64::MAX) => String::new(),
        (i64::MIN, max) => format!(" of at most {max}"),
        (min, i64::MAX) => format!(" of at least {min}"),
        (min, max) => format!(" from {min} to {max}"),
    };
    match raw.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
        Ok(_) => Err(format!("{arg} must be{range}, not `{}`", shown(raw))),
        Err(_) => Err(format!(
            "{arg} must be a whole number{range}, not `{}`",
            shown(raw)
        )),
    }
}

fn check_bool(arg: &str, raw: &str) -> Result<String, String> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok("true".into()),
        "false" | "no" | "off" | "0" => Ok("false".into()),
        _ => Err(format!(
            "`--{arg}` is a switch: write `--{arg}` or `--{arg}=false`, not `{}`",
            shown(raw)
        )),
    }
}

fn check_list(inner: &ArgKind, arg: &str, raw: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for item in raw.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!(
                "{arg} is a comma-separated list with an empty item: `{}`",
                shown(raw)
            ));
        }
        out.push(check(inner, arg, item)?);
    }
    Ok(out.join(","))
}

/// The catalog's pattern as written (the loader anchors it as `^(?:…)$`).
pub(crate) fn pattern_text(re: &regex::Regex) -> &str {
    let s = re.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

/// `^[A-Za-z0-9_.:-]{1,64}$`
fn is_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

/// A user value for an error message: at most 60 characters, no backticks
/// (they would break the chat formatting around it).
pub(crate) fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(60)
        .map(|c| if c == '`' { '\'' } else { c })
        .collect();
    if s.chars().nth(60).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        let list = ArgKind::List(Box::new(ArgKind::Int { min: 1, max: 9 }));
        assert_eq!(check(&list, "n", " 1, 02 ,3").unwrap(), "1,2,3");
        assert_eq!(check(&ArgKind::Duration, "d", "90m").unwrap(), "1h30m");
        assert_eq!(check(&ArgKind::Bool, "b", "YES").unwrap(), "true");
        let e = ArgKind::Enum(vec!["Memory".into()]);
        assert_eq!(check(&e, "s", "memory").unwrap(), "Memory");
    }

    #[test]
    fn ids() {
        assert!(is_id("job:123_a.b-c"));
        assert!(!is_id(""));
        assert!(!is_id("a b"));
        assert!(!is_id(&"x".repeat(65)));
        assert!(!is_id("é"));
    }

    #[test]
    fn shown_truncates() {
        assert_eq!(shown(&"é".repeat(100)).chars().count(), 61);
        assert_eq!(shown("a`b"), "a'b");
    }
}
