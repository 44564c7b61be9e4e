//! `/alerts …`: words → what is firing, the silences, and silence changes.
//! Matchers are checked here (syntax, the match-all refusal, the duration
//! bound: `alerts::silence`), so a slip is answered at once; which
//! silence an id means and who may set one are the engine's to check.

use super::tokenize::Token;
use super::{Scope, UsageError};
use crate::alerts::silence;
use std::time::Duration;

/// `/alerts …`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alerts {
    /// `/alerts`: what is firing now.
    Firing,
    /// `/alerts silences`: the active silences and maintenance windows.
    Silences,
    /// `/alerts silence <matchers…> <duration> [comment…]`; matchers in
    /// their stored form (`alertname="X"`).
    Silence {
        matchers: Vec<String>,
        duration: Duration,
        comment: Option<String>,
    },
    /// `/alerts maintenance <system> <duration> [comment…]`: a silence of
    /// every route of profile `system`.
    Maintenance {
        profile: String,
        duration: Duration,
        comment: Option<String>,
    },
    /// `/alerts unsilence <id>`.
    Unsilence { id: i64 },
}

/// `(verb, usage)` of every `/alerts` subcommand.
const VERBS: [(&str, &str); 4] = [
    ("silences", "/alerts silences"),
    (
        "silence",
        "/alerts silence <matcher>[,<matcher>…] <duration> [comment…]",
    ),
    (
        "maintenance",
        "/alerts maintenance <system> <duration> [comment…]",
    ),
    ("unsilence", "/alerts unsilence <id>"),
];

pub(super) const ALERTS_USAGE: &str =
    "/alerts [silences · silence <matchers> <duration> [comment] · maintenance <system> <duration> [comment] · unsilence <id>]";

fn all_usages() -> String {
    std::iter::once("/alerts")
        .chain(VERBS.iter().map(|v| v.1))
        .map(|u| format!("• `{u}`"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `/alerts …`.
pub(super) fn alerts(rest: &[Token], scope: &Scope) -> Result<Alerts, UsageError> {
    let Some(first) = rest.first() else {
        return Ok(Alerts::Firing);
    };
    let verb = first.text.to_lowercase();
    let Some(&(verb, usage)) = VERBS.iter().find(|v| v.0 == verb && !first.flag) else {
        let hint = super::suggest::closest(&verb, VERBS.iter().map(|v| v.0))
            .map(|s| format!(" Did you mean `/alerts {s}`?"))
            .unwrap_or_default();
        return Err(UsageError::new(format!(
            "Unknown command `/alerts {}`.{hint}\nThe `/alerts` commands are:\n{}",
            super::value::shown(&first.text),
            all_usages()
        )));
    };
    let rest = &rest[1..];
    let need = |what: &str| UsageError::new(format!("{what}\nUsage: `{usage}`"));
    if let Some(f) = rest.iter().find(|t| t.flag) {
        return Err(need(&format!(
            "`/alerts {verb}` has no option `{}`.",
            super::value::shown(&f.text)
        )));
    }
    match verb {
        "silences" if rest.is_empty() => Ok(Alerts::Silences),
        "silences" => Err(need("`/alerts silences` takes no arguments.")),
        "unsilence" => match rest {
            [id] => silence_id(&id.text)
                .map(|id| Alerts::Unsilence { id })
                .ok_or_else(|| {
                    need(&format!(
                        "`{}` is not a silence id (they look like s3; see `/alerts silences`).",
                        super::value::shown(&id.text)
                    ))
                }),
            [] => Err(need("Which silence? Give its id (see `/alerts silences`).")),
            _ => Err(need("`/alerts unsilence` takes only a silence id.")),
        },
        "maintenance" => {
            let [system, d, comment @ ..] = rest else {
                return Err(need(
                    "Name a system and a duration, e.g. `/alerts maintenance pdf 2h kernel updates`.",
                ));
            };
            let profile = system.text.to_lowercase();
            if !scope.enabled_profiles.contains(&profile) {
                let hint =
                    super::suggest::closest(&profile, scope.enabled_profiles.iter().map(String::as_str))
                        .map(|s| format!(" Did you mean `{s}`?"))
                        .unwrap_or_default();
                return Err(need(&format!(
                    "`{}` is not a system here.{hint} The systems are: {}.",
                    super::value::shown(&system.text),
                    scope.enabled_profiles.join(", ")
                )));
            }
            Ok(Alerts::Maintenance {
                profile,
                duration: duration(&d.text).map_err(|e| need(&e))?,
                comment: comment_of(comment),
            })
        }
        _ => {
            let n = rest
                .iter()
                .take_while(|t| silence::looks_like_matcher(&t.text))
                .count();
            if n == 0 {
                return Err(need(
                    "Give matchers first, then a duration, e.g. `/alerts silence alertname=HighErrorRate,severity=critical 2h deploy`.",
                ));
            }
            let words: Vec<&str> = rest[..n].iter().map(|t| t.text.as_str()).collect();
            let matchers = silence::parse_matchers(&words).map_err(|e| need(&e))?;
            silence::check_anchored(&matchers).map_err(|e| need(&e))?;
            let Some(d) = rest.get(n) else {
                return Err(need(
                    "How long? Add a duration after the matchers, e.g. `2h` (at most 7d).",
                ));
            };
            Ok(Alerts::Silence {
                matchers: matchers.iter().map(silence::show).collect(),
                duration: duration(&d.text).map_err(|e| need(&e))?,
                comment: comment_of(&rest[n + 1..]),
            })
        }
    }
}

/// A silence's duration, bounded.
fn duration(text: &str) -> Result<Duration, String> {
    let d = crate::duration::parse(text).map_err(|e| e.to_string())?;
    silence::check_duration(d)?;
    Ok(d)
}

fn comment_of(words: &[Token]) -> Option<String> {
    let c = words
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Some(c.trim().to_string()).filter(|c| !c.is_empty())
}

/// `s3`, `S3`, `#3` or `3` → 3.
fn silence_id(text: &str) -> Option<i64> {
    let digits = text.trim_start_matches(['s', 'S', '#']);
    (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}
