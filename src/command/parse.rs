//! Words → command: built-ins, longest catalog name, profile selection,
//! arguments. Every refusal names what was wrong and how to fix it.

use super::tokenize::{tokenize, Token};
use super::value::{self, shown};
use super::{help, suggest, Builtin, Parsed, Request, Scope, UsageError};
use crate::catalog::{ArgKind, ArgSpec, Catalog, Command};
use std::collections::BTreeMap;

/// Built-in commands for help and did-you-mean: (word, usage, summary).
pub(super) const BUILTINS: [(&str, &str, &str); 11] = [
    (
        "approvals",
        "/approvals",
        "List the requests waiting for approval",
    ),
    (
        "approve",
        "/approve <id>",
        "Approve a pending request (ids look like a12)",
    ),
    (
        "reject",
        "/reject <id> [reason…]",
        "Reject a pending request, optionally saying why",
    ),
    ("cancel", "/cancel <id>", "Cancel a pending request"),
    (
        "incident",
        "/incident <declare|ack|update|severity|assign|role|report|followup|resolve|escalate|status|timeline> …",
        "Declare and run an incident: its card, thread, pages and timeline",
    ),
    ("incidents", "/incidents", "The open incidents"),
    (
        "oncall",
        super::incident::ONCALL_USAGE,
        "Who is on call now and next; temporary overrides",
    ),
    (
        "alerts",
        super::alerts::ALERTS_USAGE,
        "What is firing; silences and maintenance windows",
    ),
    (
        "done",
        "/done <id> <step>",
        "Confirm a guided run's manual step (ids look like g1a2b3c4d); the steps after it run",
    ),
    (
        "abort",
        "/abort <id>",
        "Stop a guided run where it waits for a confirmation",
    ),
    (
        "help",
        "/help [command]",
        "This help; `/help queue retry` or `/queue retry help` for one command",
    ),
];

pub(super) fn parse<'c>(catalog: &'c Catalog, scope: &Scope, text: &str) -> Result<Parsed<'c>, UsageError> {
    let trimmed = text.trim();
    let body = trimmed.strip_prefix('/').unwrap_or(trimmed).trim_start();
    if body.is_empty() {
        return Err(UsageError::new(
            "Type a command, e.g. `/help` to see what I can do.",
        ));
    }
    let tokens = tokenize(body)?;
    let first = tokens.first().filter(|t| !t.flag).map(|t| t.text.to_lowercase());
    match first.as_deref() {
        Some("help") => {
            let topic = words(&tokens[1..]).join(" ");
            help::help(catalog, scope, Some(&topic)).map(Parsed::Help)
        }
        Some(w) if BUILTINS.iter().any(|b| b.0 == w) => {
            if wants_help(&tokens[1..]) {
                return help::help(catalog, scope, Some(w)).map(Parsed::Help);
            }
            builtin(w, &tokens[1..], scope).map(Parsed::Builtin)
        }
        _ => catalog_command(catalog, scope, body, tokens),
    }
}

/// The leading words (up to the first flag), lowercased, for matching names.
fn words(tokens: &[Token]) -> Vec<String> {
    tokens
        .iter()
        .take_while(|t| !t.flag)
        .map(|t| t.text.to_lowercase())
        .collect()
}

/// `… help` as the last word, or `--help` anywhere.
fn wants_help(tokens: &[Token]) -> bool {
    let last_is_help = tokens
        .last()
        .is_some_and(|t| !t.flag && t.text.eq_ignore_ascii_case("help"));
    last_is_help || tokens.iter().any(|t| t.flag && t.text == "--help")
}

fn catalog_command<'c>(
    catalog: &'c Catalog,
    scope: &Scope,
    body: &str,
    tokens: Vec<Token>,
) -> Result<Parsed<'c>, UsageError> {
    let visible = visible(catalog, scope);
    let (sys, tokens) = take_sys(tokens)?;
    let (break_glass, tokens) = take_break_glass(tokens);
    let words = words(&tokens);
    if wants_help(&tokens) {
        let end = words.iter().position(|w| w == "help").unwrap_or(words.len());
        return help::help(catalog, scope, Some(&words[..end].join(" "))).map(Parsed::Help);
    }
    let Some((name, taken)) = longest_match(&visible, &words) else {
        return Err(unknown_command(&visible, &words));
    };
    let rest = &tokens[taken..];
    let candidates: Vec<&Command> = visible.iter().copied().filter(|c| c.name == name).collect();
    let command = select_profile(&candidates, sys.as_deref(), scope, body)?;
    let args = parse_args(command, rest)?;
    variant_args(command, &args)?;
    if let Some(m) = command.schedule.as_ref().and_then(|s| s.out_of_bounds(&args)) {
        return Err(usage_error(command, m));
    }
    let approval = command.approval(&args);
    if break_glass && !approval.is_some_and(|a| a.break_glass) {
        // A variant names itself: `/rollback` (without --emergency) has none.
        let form = match command.variants().and_then(|v| v.choice(&args)) {
            Some(c) if command.variant_policies().next().is_some() => {
                format!(" ({})", command.choice_label(c))
            }
            _ => String::new(),
        };
        return Err(UsageError::new(format!(
            "`/{}`{form} has no break-glass: {}",
            command.name,
            match approval {
                Some(_) => "it always needs its approval.",
                None => "it needs no approval anyway.",
            }
        )));
    }
    Ok(Parsed::Run(Request {
        command,
        args,
        break_glass,
    }))
}

/// An argument that belongs to another variant than the one chosen is
/// refused: `/rollback --disable x` without `--emergency`.
fn variant_args(cmd: &Command, args: &BTreeMap<String, String>) -> Result<(), UsageError> {
    let Some(v) = cmd.variants() else {
        return Ok(());
    };
    let chosen = v.choice(args);
    for other in v
        .choices
        .iter()
        .filter(|c| chosen.is_none_or(|x| x.value != c.value))
    {
        let stray = other
            .args
            .iter()
            .find(|a| args.contains_key(*a) && !chosen.is_some_and(|x| x.args.contains(a)));
        if let Some(name) = stray {
            let shown = match cmd.arg(name) {
                Some(a) if a.flag => format!("--{name}"),
                _ => name.clone(),
            };
            let label = cmd.choice_label(other);
            let when = if label.starts_with("without ") {
                label
            } else {
                format!("with {label}")
            };
            return Err(usage_error(cmd, format!("`{shown}` is only used {when}.")));
        }
    }
    Ok(())
}

/// Removes `--break-glass` from the argument tokens.
fn take_break_glass(tokens: Vec<Token>) -> (bool, Vec<Token>) {
    let before = tokens.len();
    let rest: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !(t.flag && t.text.eq_ignore_ascii_case("--break-glass")))
        .collect();
    (rest.len() != before, rest)
}

/// Commands of the enabled profiles.
pub(super) fn visible<'c>(catalog: &'c Catalog, scope: &Scope) -> Vec<&'c Command> {
    catalog
        .commands
        .iter()
        .filter(|c| scope.enabled_profiles.contains(&c.profile))
        .collect()
}

/// The longest command name that is a prefix of `words`, and how many words it takes.
pub(super) fn longest_match(visible: &[&Command], words: &[String]) -> Option<(String, usize)> {
    // One pass, no joined strings: this runs for every command typed.
    visible
        .iter()
        .filter_map(|c| leading_words(&c.name, words).map(|k| (k, c)))
        .max_by_key(|(k, _)| *k)
        .map(|(k, c)| (c.name.clone(), k))
}

/// How many words `name` has, when they are the first words of `words`.
fn leading_words(name: &str, words: &[String]) -> Option<usize> {
    let mut k = 0;
    for part in name.split(' ') {
        if words.get(k)? != part {
            return None;
        }
        k += 1;
    }
    Some(k)
}

/// Removes `--sys <profile>` / `--sys=<profile>` from the argument tokens.
fn take_sys(tokens: Vec<Token>) -> Result<(Option<String>, Vec<Token>), UsageError> {
    let mut sys = None;
    let mut rest = Vec::new();
    let mut it = tokens.into_iter();
    while let Some(t) = it.next() {
        let inline = match t.flag_parts() {
            Some((name, inline)) if name.eq_ignore_ascii_case("sys") => inline.map(str::to_string),
            _ => {
                rest.push(t);
                continue;
            }
        };
        let value = match inline {
            Some(v) => v,
            None => match it.next() {
                Some(n) if !n.flag => n.text,
                _ => {
                    return Err(UsageError::new(
                        "`--sys` needs a system name, e.g. `--sys queue`.",
                    ))
                }
            },
        };
        if sys.replace(value.to_lowercase()).is_some() {
            return Err(UsageError::new("`--sys` is given twice: name one system."));
        }
    }
    Ok((sys, rest))
}

/// Picks the profile: `--sys`, else the channel's binding, else the only one.
fn select_profile<'c>(
    candidates: &[&'c Command],
    sys: Option<&str>,
    scope: &Scope,
    body: &str,
) -> Result<&'c Command, UsageError> {
    let name = candidates.first().map(|c| c.name.as_str()).unwrap_or_default();
    let mut profiles: Vec<&str> = candidates.iter().map(|c| c.profile.as_str()).collect();
    profiles.sort_unstable();
    let find = |p: &str| candidates.iter().copied().find(|c| c.profile == p);
    if let Some(p) = sys {
        if !scope.enabled_profiles.iter().any(|e| e == p) {
            let enabled = scope.enabled_profiles.join(", ");
            let msg = format!(
                "System `{}` is not enabled here. Enabled systems: {enabled}.",
                shown(p)
            );
            return Err(UsageError::new(msg));
        }
        return find(p).ok_or_else(|| {
            let msg = format!(
                "`/{name}` does not exist in system `{p}`. It exists in: {}.",
                profiles.join(", ")
            );
            UsageError::new(msg)
        });
    }
    if let Some(c) = scope.channel_profile.and_then(find) {
        return Ok(c);
    }
    match candidates {
        [only] => Ok(*only),
        _ => Err(UsageError::new(format!(
            "`/{name}` exists in several systems: {}. Add --sys <system>, e.g. `/{body} --sys {}`.",
            profiles.join(", "),
            profiles.first().unwrap_or(&""),
        ))),
    }
}

/// Positionals in order, `--flag value`, `--flag=value`, `--switch`; then
/// defaults and the required check.
fn parse_args(cmd: &Command, tokens: &[Token]) -> Result<BTreeMap<String, String>, UsageError> {
    let mut args = BTreeMap::new();
    let mut i = 0;
    while let Some(t) = tokens.get(i) {
        i += 1;
        let (spec, raw) = match t.flag_parts() {
            Some((name, inline)) => {
                let spec = flag_spec(cmd, name)?;
                let raw = match (inline, &spec.kind) {
                    (Some(v), _) => v.to_string(),
                    (None, ArgKind::Bool) => "true".into(),
                    (None, _) => match tokens.get(i).filter(|n| !n.flag) {
                        Some(n) => {
                            i += 1;
                            n.text.clone()
                        }
                        None => return Err(usage_error(cmd, format!("`--{}` needs a value.", spec.name))),
                    },
                };
                (spec, raw)
            }
            None => {
                let next = cmd.args.iter().find(|a| !a.flag && !args.contains_key(&a.name));
                let spec = next.ok_or_else(|| too_many(cmd, &t.text))?;
                (spec, t.text.clone())
            }
        };
        let normalized =
            value::check(&spec.kind, &spec.name, &raw).map_err(|e| usage_error(cmd, format!("{e}.")))?;
        if args.insert(spec.name.clone(), normalized).is_some() {
            let dash = if spec.flag { "--" } else { "" };
            return Err(usage_error(cmd, format!("`{dash}{}` is given twice.", spec.name)));
        }
    }
    fill_defaults(cmd, &mut args)?;
    Ok(args)
}

fn fill_defaults(cmd: &Command, args: &mut BTreeMap<String, String>) -> Result<(), UsageError> {
    let mut missing = Vec::new();
    for spec in &cmd.args {
        if args.contains_key(&spec.name) {
            continue;
        }
        if let Some(d) = &spec.default {
            // A default the kind refuses is a catalog slip; keep it as written.
            let v = value::check(&spec.kind, &spec.name, d).unwrap_or_else(|_| d.clone());
            args.insert(spec.name.clone(), v);
        } else if spec.required {
            missing.push(format!("<{}>", spec.name));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let msg = format!("Missing {} for `/{}`.", missing.join(" and "), cmd.name);
    Err(usage_error(cmd, msg))
}

/// The argument `--name` refers to (flags, and positionals given by name).
fn flag_spec<'c>(cmd: &'c Command, name: &str) -> Result<&'c ArgSpec, UsageError> {
    let lower = name.to_lowercase();
    if let Some(spec) = cmd.arg(&lower) {
        return Ok(spec);
    }
    let what = match name {
        "" => "`--` must be followed by a flag name".to_string(),
        _ => format!("Unknown flag `--{}` for `/{}`", shown(name), cmd.name),
    };
    let names = cmd.args.iter().map(|a| a.name.as_str());
    let hint = match suggest::closest(&lower, names) {
        Some(s) => format!(" Did you mean `--{s}`?"),
        None => {
            let flags: Vec<String> = cmd
                .args
                .iter()
                .filter(|a| a.flag)
                .map(|a| format!("--{}", a.name))
                .collect();
            match flags.is_empty() {
                true => format!(" `/{}` takes no flags.", cmd.name),
                false => format!(" `/{}` has these flags: {}.", cmd.name, flags.join(", ")),
            }
        }
    };
    Err(usage_error(cmd, format!("{what}.{hint}")))
}

fn too_many(cmd: &Command, extra: &str) -> UsageError {
    let msg = format!(
        "Too many arguments for `/{}`: `{}` is not expected.",
        cmd.name,
        shown(extra)
    );
    usage_error(cmd, msg)
}

fn usage_error(cmd: &Command, msg: String) -> UsageError {
    UsageError::new(format!("{msg}\nUsage: `{}`", cmd.usage()))
}

/// Did-you-mean for words that match no visible command.
pub(super) fn unknown_command(visible: &[&Command], words: &[String]) -> UsageError {
    let Some(first) = words.first() else {
        return UsageError::new("Start with a command name, e.g. `/help` to see them all.");
    };
    let group: Vec<&Command> = visible
        .iter()
        .copied()
        .filter(|c| first_word(&c.name) == first.as_str())
        .collect();
    if !group.is_empty() {
        return unknown_in_group(first, &group, words);
    }
    let mut best: Option<(usize, String, &str)> = None;
    let full = visible.iter().map(|c| c.name.as_str());
    let firsts = visible
        .iter()
        .map(|c| first_word(&c.name))
        .chain(BUILTINS.iter().map(|b| b.0));
    for cand in full.chain(firsts) {
        let k = cand.split(' ').count();
        let Some(typed) = words.get(..k).map(|w| w.join(" ")) else {
            continue;
        };
        match suggest::distance(&typed, cand) {
            Some(d) if best.as_ref().is_none_or(|b| d < b.0) => best = Some((d, typed, cand)),
            _ => {}
        }
    }
    let Some((_, typed, cand)) = best else {
        return UsageError::new(format!(
            "Unknown command `/{}`. Type `/help` to see what I can do.",
            shown(first)
        ));
    };
    let is_group = !visible.iter().any(|c| c.name == cand) && !BUILTINS.iter().any(|b| b.0 == cand);
    let more = if is_group {
        format!(" `/help {cand}` lists its commands.")
    } else {
        String::new()
    };
    UsageError::new(format!(
        "Unknown command `/{}`. Did you mean `/{cand}`?{more}",
        shown(&typed)
    ))
}

/// The first word names a group (`/queue`) but the rest matches nothing.
fn unknown_in_group(first: &str, group: &[&Command], words: &[String]) -> UsageError {
    // The group's usage lines only when they are shown (not with a suggestion).
    let list = || help::command_lines(group);
    let Some(second) = words.get(1) else {
        return UsageError::new(format!("`/{first}` needs a subcommand:\n{}", list()));
    };
    let mut best: Option<(usize, String, &str)> = None;
    for c in group {
        let k = c.name.split(' ').count();
        let Some(typed) = words.get(1..k).map(|w| w.join(" ")) else {
            continue;
        };
        let tail = c.name.split_once(' ').map(|t| t.1).unwrap_or_default();
        match suggest::distance(&typed, tail) {
            Some(d) if best.as_ref().is_none_or(|b| d < b.0) => {
                best = Some((d, words[..k].join(" "), &c.name))
            }
            _ => {}
        }
    }
    UsageError::new(match best {
        Some((_, typed, name)) => format!("Unknown command `/{}`. Did you mean `/{name}`?", shown(&typed)),
        None => format!(
            "Unknown command `/{first} {}`. The `/{first}` commands are:\n{}",
            shown(second),
            list()
        ),
    })
}

pub(super) fn first_word(name: &str) -> &str {
    name.split(' ').next().unwrap_or(name)
}

fn builtin(word: &str, rest: &[Token], scope: &Scope) -> Result<Builtin, UsageError> {
    let usage = BUILTINS
        .iter()
        .find(|b| b.0 == word)
        .map(|b| b.1)
        .unwrap_or_default();
    let extra = |what: &str| UsageError::new(format!("`/{word}` takes {what}.\nUsage: `{usage}`"));
    match word {
        "approvals" if rest.is_empty() => Ok(Builtin::Approvals),
        "approvals" | "incidents" if !rest.is_empty() => Err(extra("no arguments")),
        "incidents" => Ok(Builtin::Incidents),
        "incident" => super::incident::incident(rest).map(Builtin::Incident),
        "oncall" => super::incident::oncall(rest).map(Builtin::Oncall),
        "alerts" => super::alerts::alerts(rest, scope).map(Builtin::Alerts),
        "reject" => {
            let id = approval_id(rest.first(), usage)?;
            let reason = rest[1..]
                .iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let reason = Some(reason.trim().to_string()).filter(|r| !r.is_empty());
            Ok(Builtin::Reject { id, reason })
        }
        "done" => {
            let id = guided_id(rest.first(), usage)?;
            let step = match rest.get(1).map(|t| t.text.trim()) {
                None => Err(UsageError::new(format!(
                    "Which step is done? Give its number, as the run's message shows.\nUsage: `{usage}`"
                ))),
                Some(t) => t.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    UsageError::new(format!("`{}` is not a step number.\nUsage: `{usage}`", shown(t)))
                }),
            }?;
            match rest.len() {
                2 => Ok(Builtin::Done { id, step }),
                _ => Err(extra("the run's id and the step number")),
            }
        }
        "abort" if rest.len() > 1 => Err(extra("only the run's id")),
        "abort" => guided_id(rest.first(), usage).map(|id| Builtin::Abort { id }),
        _ if rest.len() > 1 => Err(extra("only the approval id")),
        "approve" => approval_id(rest.first(), usage).map(|id| Builtin::Approve { id }),
        _ => approval_id(rest.first(), usage).map(|id| Builtin::Cancel { id }),
    }
}

/// A guided run's id: `g` and 8 hex digits, any case → lower case.
fn guided_id(token: Option<&Token>, usage: &str) -> Result<String, UsageError> {
    let Some(t) = token else {
        return Err(UsageError::new(format!(
            "Which guided run? Give its id (they look like g1a2b3c4d).\nUsage: `{usage}`"
        )));
    };
    let s = t.text.trim().to_ascii_lowercase();
    let hex = s.strip_prefix('g').unwrap_or("");
    if hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(s);
    }
    Err(UsageError::new(format!(
        "`{}` is not a guided run's id (they look like g1a2b3c4d).\nUsage: `{usage}`",
        shown(t.text.trim())
    )))
}

/// `a12`, `A12` or `12` → `a12`.
fn approval_id(token: Option<&Token>, usage: &str) -> Result<String, UsageError> {
    let Some(t) = token else {
        return Err(UsageError::new(format!(
            "Which approval? Give its id (they look like a12).\nUsage: `{usage}`"
        )));
    };
    let s = t.text.trim();
    let digits = s.strip_prefix(['a', 'A']).unwrap_or(s);
    let number = (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| digits.parse::<u64>().ok())
        .flatten();
    match number {
        Some(n) => Ok(format!("a{n}")),
        None => Err(UsageError::new(format!(
            "`{}` is not an approval id (they look like a12).\nUsage: `{usage}`",
            shown(s)
        ))),
    }
}
