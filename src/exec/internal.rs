//! `internal` actions: answered by opsbot itself. Nothing is sent anywhere.
//! A link is built from the target's base URL with user name and password
//! removed, its path rendered as an http action's path is. A maintenance
//! step is checked and described here, without I/O: opening or ending the
//! window is an [`Effect`] the engine applies in the transaction that
//! records the execution, and whether the window is on comes in with the
//! arguments ([`MAINTENANCE_STATE`], set by the engine).

use super::{address, http, lookup, render_escaped, ExecError, ExecOutput};
use crate::catalog::{ConfirmStep, InternalAction, MaintenanceStep, Target, TargetKind};
use crate::clock::{rfc3339, Millis};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// The argument key under which the engine hands a `require` step whether
/// the command's profile's maintenance window is on (`on`, else `off`).
/// Absent (nobody looked): the step refuses.
pub const MAINTENANCE_STATE: &str = "run.maintenance";

/// What an executed action asks the engine to do in the transaction that
/// records its result (the executor does no I/O for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Open the command's profile's maintenance window over `[starts_at, ends_at)`.
    OpenWindow { starts_at: Millis, ends_at: Millis },
    /// End the command's profile's active maintenance window(s).
    CloseWindow,
    /// A guided seq stopped at its step `step` of `of` (numbered from 1): a
    /// person is to confirm `text` within `within`; the steps after it run
    /// only then ([`super::Executor::resume`]).
    Pause {
        step: usize,
        of: usize,
        text: String,
        within: Duration,
        /// The lines of the steps that ran before it in this run.
        ran: String,
    },
}

/// The URL a link action answers (no credentials). No I/O.
pub(super) fn link(
    targets: &BTreeMap<String, Target>,
    target: &str,
    path: &str,
    args: &BTreeMap<String, String>,
) -> Result<reqwest::Url, ExecError> {
    let t = lookup(targets, target, TargetKind::Http)?;
    let url = http::build_url(t, path, args)?;
    let invalid = |e: String| ExecError::Invalid {
        target: Some(t.name.clone()),
        message: format!("target {}: no link: {e}", t.name),
    };
    let parsed = reqwest::Url::parse(&address(&url)).map_err(|e| invalid(e.to_string()))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(invalid(format!("`{other}` is not an http URL"))),
    }
}

/// A checked `open`: how long, and from when (`None`: from now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    pub(super) lasts: Duration,
    pub(super) from: Option<Millis>,
}

/// Renders and checks an `open` step's templates.
pub(super) fn window(
    lasts: &str,
    from: Option<&str>,
    args: &BTreeMap<String, String>,
) -> Result<Window, ExecError> {
    let invalid = |message: String| ExecError::Invalid {
        target: None,
        message,
    };
    let text = render_escaped(lasts, args, str::to_string)?;
    let lasts = crate::duration::parse(&text)
        .map_err(|e| invalid(format!("maintenance window length `{text}`: {e}")))?;
    crate::alerts::silence::check_duration(lasts).map_err(|e| invalid(format!("maintenance window: {e}")))?;
    let from = match from {
        Some(tpl) => Some(start(&render_escaped(tpl, args, str::to_string)?).ok_or_else(|| {
            invalid("maintenance window start: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)".into())
        })?),
        None => None,
    };
    Ok(Window { lasts, from })
}

/// `YYYY-MM-DD` (00:00) or `YYYY-MM-DDTHH:MM`, UTC, as milliseconds.
fn start(text: &str) -> Option<Millis> {
    use chrono::{NaiveDate, NaiveDateTime};
    let at = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
        })?;
    Some(at.and_utc().timestamp_millis())
}

/// How a maintenance step is shown before it runs (cards, `/help`-style
/// renderings): one line.
pub(super) fn describe(step: &MaintenanceStep, args: &BTreeMap<String, String>) -> Result<String, ExecError> {
    Ok(match step {
        MaintenanceStep::Open { lasts, from } => {
            let w = window(lasts, from.as_deref(), args)?;
            let length = crate::duration::format(w.lasts);
            match w.from {
                None => format!("opens this system's maintenance window now for {length}"),
                Some(at) => format!(
                    "opens this system's maintenance window from {} for {length}",
                    rfc3339(at)
                ),
            }
        }
        MaintenanceStep::Close => "ends this system's maintenance window".into(),
        MaintenanceStep::Require => "refuses unless this system's maintenance window is on".into(),
    })
}

/// Runs an internal action at `now`: a link's `fields.url`, or a
/// maintenance step's effect.
pub(super) fn run(
    a: &InternalAction,
    targets: &BTreeMap<String, Target>,
    args: &BTreeMap<String, String>,
    now: Millis,
) -> Result<ExecOutput, ExecError> {
    match a {
        InternalAction::Link { target, path } => {
            let url = link(targets, target, path, args)?;
            Ok(ExecOutput {
                summary: format!("link to {target}: {url}"),
                text: url.to_string(),
                fields: json!({ "url": url.to_string() }),
                effects: Vec::new(),
            })
        }
        InternalAction::Maintenance(step) => maintenance(step, args, now),
        // A seq stops before its guided steps (`seq::run_seq`): one reached
        // here stands alone, where nobody could resume after it.
        InternalAction::Confirm(_) => Err(ExecError::Refused {
            target: None,
            what: "a confirmation step".into(),
            reason: "it only runs as a step of a command's own seq".into(),
        }),
    }
}

/// A guided step's text with `args` filled in, and how it is shown.
pub(super) fn confirm_text(step: &ConfirmStep, args: &BTreeMap<String, String>) -> Result<String, ExecError> {
    render_escaped(&step.text, args, str::to_string)
}

fn maintenance(
    step: &MaintenanceStep,
    args: &BTreeMap<String, String>,
    now: Millis,
) -> Result<ExecOutput, ExecError> {
    let out = |summary: String, effects: Vec<Effect>| ExecOutput {
        summary,
        text: String::new(),
        fields: json!({}),
        effects,
    };
    match step {
        MaintenanceStep::Open { lasts, from } => {
            let w = window(lasts, from.as_deref(), args)?;
            let starts_at = w.from.unwrap_or(now);
            let ends_at = starts_at.saturating_add(i64::try_from(w.lasts.as_millis()).unwrap_or(i64::MAX));
            if ends_at <= now {
                return Ok(out(
                    format!(
                        "maintenance window not opened: it would have ended at {}",
                        rfc3339(ends_at)
                    ),
                    Vec::new(),
                ));
            }
            let summary = if starts_at > now {
                format!(
                    "maintenance window from {} until {}",
                    rfc3339(starts_at),
                    rfc3339(ends_at)
                )
            } else {
                format!("maintenance window until {}", rfc3339(ends_at))
            };
            Ok(out(summary, vec![Effect::OpenWindow { starts_at, ends_at }]))
        }
        MaintenanceStep::Close => Ok(out("maintenance window ends".into(), vec![Effect::CloseWindow])),
        MaintenanceStep::Require => match args.get(MAINTENANCE_STATE).map(String::as_str) {
            Some("on") => Ok(out("maintenance window is on".into(), Vec::new())),
            state => Err(ExecError::Refused {
                target: None,
                what: "running outside a maintenance window".into(),
                reason: if state.is_some() {
                    "this runs only while its system's maintenance window is on, and none is on now".into()
                } else {
                    "whether its system's maintenance window is on was not checked".into()
                },
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const NOW: Millis = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn open_from_now_or_from_a_day_or_a_time_in_utc() {
        let now = Window {
            lasts: Duration::from_secs(7200),
            from: None,
        };
        assert_eq!(window("{for}", None, &args(&[("for", "2h")])).unwrap(), now);
        let day = window("{len}", Some("{d}"), &args(&[("len", "2h"), ("d", "2024-01-15")])).unwrap();
        assert_eq!(day.from, Some(1_705_276_800_000));
        let at = window(
            "{len}",
            Some("{d}T{at}"),
            &args(&[("len", "2h"), ("d", "2024-01-15"), ("at", "22:30")]),
        )
        .unwrap();
        assert_eq!(at.from.map(rfc3339).as_deref(), Some("2024-01-15T22:30:00.000Z"));
        for (len, d) in [
            ("8d", "2024-01-15"),
            ("2h", "2024-13-01"),
            ("2h", "yesterday"),
            ("30s", "2024-01-15"),
        ] {
            assert!(
                window("{len}", Some("{d}"), &args(&[("len", len), ("d", d)])).is_err(),
                "{len} {d}"
            );
        }
    }

    #[test]
    fn open_is_an_effect_and_a_window_already_over_is_none() {
        let step = MaintenanceStep::Open {
            lasts: "{for}".into(),
            from: None,
        };
        let out = maintenance(&step, &args(&[("for", "2h")]), NOW).unwrap();
        assert_eq!(
            out.effects,
            [Effect::OpenWindow {
                starts_at: NOW,
                ends_at: NOW + 7_200_000
            }]
        );
        let past = MaintenanceStep::Open {
            lasts: "2h".into(),
            from: Some("2023-11-14".into()),
        };
        let out = maintenance(&past, &args(&[]), NOW).unwrap();
        assert!(out.effects.is_empty());
        assert_eq!(
            out.summary,
            "maintenance window not opened: it would have ended at 2023-11-14T02:00:00.000Z"
        );
    }

    #[test]
    fn require_refuses_unless_the_engine_said_on() {
        let r = |state: Option<&str>| {
            let a = state.map_or_else(BTreeMap::new, |s| args(&[(MAINTENANCE_STATE, s)]));
            maintenance(&MaintenanceStep::Require, &a, NOW)
        };
        assert!(r(Some("on")).is_ok());
        let off = r(Some("off")).unwrap_err().to_string();
        assert_eq!(
            off,
            "running outside a maintenance window refused: this runs only while its system's maintenance window is on, and none is on now"
        );
        assert!(r(None).is_err());
    }
}
