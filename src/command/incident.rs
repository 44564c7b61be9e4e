//! `/incident …`, `/incidents` and `/oncall …`: words → the incident
//! module's commands. Whether a level exists, who a person is and which
//! incident a thread means are the engine's to check (they need the
//! profile's policy, the directory and the store).

use super::tokenize::Token;
use super::UsageError;
use crate::incident::{Action, Command, Oncall, Role};

/// `(verb, usage)` of every `/incident` subcommand, for usage errors.
pub(super) const INCIDENT_VERBS: [(&str, &str); 12] = [
    ("declare", "/incident declare <level> <title…> [--sys <system>]"),
    ("ack", "/incident ack [#id]"),
    ("update", "/incident update [#id] <text…>"),
    ("severity", "/incident severity [#id] <level>"),
    ("assign", "/incident assign [#id] <person>"),
    ("role", "/incident role [#id] <commander|comms|scribe> <person>"),
    (
        "report",
        "/incident report [#id] --impact <text> --actions <text> [--next <duration>]",
    ),
    ("followup", "/incident followup [#id] <text…>"),
    ("resolve", "/incident resolve [#id] [summary…]"),
    ("escalate", "/incident escalate [#id]"),
    ("status", "/incident status [#id]"),
    ("timeline", "/incident timeline [#id]"),
];

pub(super) const ONCALL_USAGE: &str =
    "/oncall [rotation] · /oncall override <person> <duration> [--rotation <name>]";

fn all_usages() -> String {
    INCIDENT_VERBS
        .iter()
        .map(|v| format!("• `{}`", v.1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `#12` → 12.
fn incident_id(t: &Token) -> Option<i64> {
    let digits = t.text.strip_prefix('#')?;
    (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Words, and `(name, value)` flags.
type Split<'t> = (Vec<&'t Token>, Vec<(String, String)>);

/// Splits off `--name value` / `--name=value` flags (only `allowed` ones)
/// from the words.
fn flags<'t>(rest: &'t [Token], usage: &str, allowed: &[&str]) -> Result<Split<'t>, UsageError> {
    let mut words = Vec::new();
    let mut out = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let t = &rest[i];
        if let Some((name, _)) = t
            .flag_parts()
            .filter(|(n, _)| !allowed.contains(&n.to_lowercase().as_str()))
        {
            let command = usage.split(" [").next().unwrap_or(usage);
            let command = command.split(" <").next().unwrap_or(command);
            return Err(UsageError::new(format!(
                "`{command}` has no option `--{name}`.\nUsage: `{usage}`"
            )));
        }
        match t.flag_parts() {
            None => words.push(t),
            Some((name, Some(v))) => out.push((name.to_lowercase(), v.to_string())),
            Some((name, None)) => {
                let Some(v) = rest.get(i + 1).filter(|n| !n.flag) else {
                    return Err(UsageError::new(format!(
                        "`--{name}` needs a value.\nUsage: `{usage}`"
                    )));
                };
                out.push((name.to_lowercase(), v.text.clone()));
                i += 1;
            }
        }
        i += 1;
    }
    Ok((words, out))
}

fn join(words: &[&Token]) -> String {
    words
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}

/// `/incident <verb> …`.
pub(super) fn incident(rest: &[Token]) -> Result<Command, UsageError> {
    let Some(verb_token) = rest.first().filter(|t| !t.flag) else {
        return Err(UsageError::new(format!(
            "`/incident` needs a subcommand:\n{}",
            all_usages()
        )));
    };
    let verb = verb_token.text.to_lowercase();
    let Some(&(verb, usage)) = INCIDENT_VERBS.iter().find(|v| v.0 == verb) else {
        let names: Vec<&str> = INCIDENT_VERBS.iter().map(|v| v.0).collect();
        let hint = super::suggest::closest(&verb, names.iter().copied())
            .map(|s| format!(" Did you mean `/incident {s}`?"))
            .unwrap_or_default();
        return Err(UsageError::new(format!(
            "Unknown command `/incident {}`.{hint}\nThe `/incident` commands are:\n{}",
            super::value::shown(&verb),
            all_usages()
        )));
    };
    let mut rest = &rest[1..];
    let id = match rest.first().and_then(incident_id) {
        Some(n) if verb != "declare" => {
            rest = &rest[1..];
            Some(n)
        }
        _ => None,
    };
    let allowed: &[&str] = match verb {
        "declare" => &["sys"],
        "report" => &["impact", "actions", "next"],
        _ => &[],
    };
    let (words, flags) = flags(rest, usage, allowed)?;
    let text = join(&words);
    let need = |what: &str| UsageError::new(format!("{what}\nUsage: `{usage}`"));
    let action = match verb {
        "declare" => {
            let (Some(level), true) = (words.first(), words.len() > 1) else {
                return Err(need(
                    "Give a level and a title, e.g. `/incident declare P1 checkout is down`.",
                ));
            };
            Action::Declare {
                level: level.text.clone(),
                title: join(&words[1..]),
                profile: flags.iter().find(|f| f.0 == "sys").map(|f| f.1.clone()),
            }
        }
        "report" => {
            let get = |n: &str| flags.iter().find(|f| f.0 == n).map(|f| f.1.clone());
            let (Some(impact), Some(actions)) = (get("impact"), get("actions")) else {
                return Err(need("A report says the impact and the actions taken."));
            };
            let next = match get("next") {
                Some(d) => Some(crate::duration::parse(&d).map_err(|e| need(&format!("--next: {e}")))?),
                None => None,
            };
            if !words.is_empty() {
                return Err(need("Put the report's text in `--impact` and `--actions`."));
            }
            Action::Report {
                impact,
                actions,
                next,
            }
        }
        _ => match (verb, words.len()) {
            ("ack" | "escalate" | "status" | "timeline", 0) => match verb {
                "ack" => Action::Ack,
                "escalate" => Action::Escalate,
                "status" => Action::Status,
                _ => Action::Timeline,
            },
            ("ack" | "escalate" | "status" | "timeline", _) => {
                return Err(need(&format!("`/incident {verb}` takes only an incident id.")))
            }
            ("update", 0) => return Err(need("What is the update?")),
            ("update", _) => Action::Update(text),
            ("followup", 0) => return Err(need("What needs following up?")),
            ("followup", _) => Action::Followup(text),
            ("resolve", _) => Action::Resolve(Some(text).filter(|t| !t.is_empty())),
            ("severity", 1) => Action::Severity(text),
            ("severity", _) => return Err(need("Give one level.")),
            ("assign", 1) => Action::Assign(text),
            ("assign", _) => return Err(need("Give one person.")),
            ("role", 2) => {
                let Some(role) = Role::parse(&words[0].text) else {
                    return Err(need(&format!(
                        "`{}` is not an incident role (commander, comms or scribe).",
                        super::value::shown(&words[0].text)
                    )));
                };
                Action::Role {
                    role,
                    person: words[1].text.clone(),
                }
            }
            _ => return Err(need("Give a role and a person.")),
        },
    };
    Ok(Command { action, id })
}

/// `/oncall …`.
pub(super) fn oncall(rest: &[Token]) -> Result<Oncall, UsageError> {
    let (words, flags) = flags(rest, ONCALL_USAGE, &["rotation"])?;
    let need = |what: &str| UsageError::new(format!("{what}\nUsage: `{ONCALL_USAGE}`"));
    let rotation = flags.iter().find(|f| f.0 == "rotation").map(|f| f.1.clone());
    match words.as_slice() {
        [] => Ok(Oncall::Show { rotation }),
        [w] if !w.text.eq_ignore_ascii_case("override") && rotation.is_none() => Ok(Oncall::Show {
            rotation: Some(w.text.clone()),
        }),
        [w, person, d] if w.text.eq_ignore_ascii_case("override") => Ok(Oncall::Override {
            person: person.text.clone(),
            duration: crate::duration::parse(&d.text).map_err(|e| need(&format!("duration: {e}")))?,
            rotation,
        }),
        [w, ..] if w.text.eq_ignore_ascii_case("override") => Err(need(
            "An override names a person and a duration, e.g. `/oncall override bob 4h`.",
        )),
        _ => Err(need("Name one rotation, e.g. `/oncall primary`.")),
    }
}
