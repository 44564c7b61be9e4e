//! Help text, generated from the catalog definitions (the single source of
//! usage lines, argument kinds, risk, roles and approval policies).

use super::parse::{first_word, longest_match, unknown_command, visible, BUILTINS};
use super::{value, Scope, UsageError};
use crate::catalog::{ApprovePolicy, ArgKind, ArgSpec, Catalog, Command};
use std::collections::BTreeMap;

/// Help for `topic` (command words, `/` optional), or everything when absent
/// or empty. An unknown topic is an error with a did-you-mean.
pub(super) fn help(catalog: &Catalog, scope: &Scope, topic: Option<&str>) -> Result<String, UsageError> {
    let visible = visible(catalog, scope);
    let words: Vec<String> = topic
        .unwrap_or_default()
        .split_whitespace()
        .map(|w| w.trim_start_matches('/').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    let Some(first) = words.first() else {
        return Ok(overview(&visible));
    };
    if let Some((_, usage, summary)) = BUILTINS.iter().find(|b| b.0 == first) {
        return Ok(format!("`{usage}`\n{summary}"));
    }
    if let Some((name, _)) = longest_match(&visible, &words) {
        return Ok(details(&visible, &name));
    }
    let group: Vec<&Command> = visible
        .iter()
        .copied()
        .filter(|c| first_word(&c.name) == first.as_str())
        .collect();
    if words.len() == 1 && !group.is_empty() {
        return Ok(format!("`/{first}` commands:\n{}", command_lines(&group)));
    }
    Err(unknown_command(&visible, &words))
}

/// Every visible command grouped by its first word, then the built-ins.
fn overview(visible: &[&Command]) -> String {
    let mut groups: BTreeMap<&str, Vec<&Command>> = BTreeMap::new();
    for c in visible {
        groups.entry(first_word(&c.name)).or_default().push(c);
    }
    let mut out = String::from("Commands you can use here:\n");
    for (word, cmds) in groups {
        out.push_str(&format!("\n/{word}\n{}\n", command_lines(&cmds)));
    }
    out.push_str("\nApprovals, incidents and help\n");
    for (_, usage, summary) in BUILTINS {
        out.push_str(&format!("• `{usage}` — {summary}\n"));
    }
    out.push_str("\nDetails of one command: `/help <command>`, e.g. `/help queue stats`.");
    out
}

/// One `• usage — summary (risk, …)` line per command, sorted by name and
/// profile; the system is named when the same words exist in several.
pub(super) fn command_lines(cmds: &[&Command]) -> String {
    let mut sorted = cmds.to_vec();
    sorted.sort_by(|a, b| (&a.name, &a.profile).cmp(&(&b.name, &b.profile)));
    let lines: Vec<String> = sorted
        .iter()
        .map(|c| {
            let mut tags = vec![c.risk.as_str().to_string()];
            if c.may_need_approval() {
                tags.push("needs approval".into());
            }
            if sorted.iter().filter(|o| o.name == c.name).count() > 1 {
                tags.push(format!("system {}", c.profile));
            }
            format!("• `{}` — {} ({})", c.usage(), c.summary, tags.join(", "))
        })
        .collect();
    lines.join("\n")
}

/// Everything about the command `name`, once per visible profile.
fn details(visible: &[&Command], name: &str) -> String {
    let mut cmds: Vec<&Command> = visible.iter().copied().filter(|c| c.name == name).collect();
    cmds.sort_by(|a, b| a.profile.cmp(&b.profile));
    let blocks: Vec<String> = cmds.iter().map(|c| command_details(c)).collect();
    let mut out = blocks.join("\n\n");
    if cmds.len() > 1 {
        out.push_str(&format!(
            "\n\nThis command exists in several systems; pick one with --sys <system>, e.g. `/{name} --sys {}`.",
            cmds[0].profile
        ));
    }
    out
}

fn command_details(c: &Command) -> String {
    let mut out = format!("`{}`\n{}\nSystem: {}\n", c.usage(), c.summary, c.profile);
    if !c.args.is_empty() {
        out.push_str("Arguments:\n");
        for a in &c.args {
            out.push_str(&format!("• {}\n", arg_line(a)));
        }
    }
    out.push_str(&format!(
        "Risk: {}\nWho may run it: {}\n",
        c.risk.as_str(),
        c.roles.join(", ")
    ));
    let own: Vec<_> = c.variant_policies().collect();
    if own.is_empty() {
        match &c.approve {
            Some(p) => out.push_str(&format!(
                "Approval: {}; the requester cannot approve",
                policy_text(p)
            )),
            None => out.push_str("Approval: not needed"),
        }
        return out;
    }
    // Variants approved by their own policies: one line each.
    out.push_str("Approval (the requester cannot approve):");
    for choice in c.variants().map(|v| v.choices.as_slice()).unwrap_or_default() {
        let text = match choice.policy.as_ref().or(c.approve.as_ref()) {
            Some(p) if p.break_glass => {
                format!("{}; --break-glass in an open rank-1 incident", policy_text(p))
            }
            Some(p) => policy_text(p),
            None => "not needed".into(),
        };
        out.push_str(&format!("\n• {}: {text}", c.choice_label(choice)));
    }
    out
}

/// `1 approval from sre or tech-lead, valid for 15m`
fn policy_text(p: &ApprovePolicy) -> String {
    format!(
        "{} {} from {}, valid for {}",
        p.count,
        if p.count == 1 { "approval" } else { "approvals" },
        p.roles.join(" or "),
        crate::duration::format(p.ttl),
    )
}

/// `--grace — duration (30s, 5m, 1h, 1d); default 24h: keep jobs younger than this`
fn arg_line(a: &ArgSpec) -> String {
    let name = if a.flag {
        format!("--{}", a.name)
    } else {
        a.name.clone()
    };
    let mut parts = vec![kind_text(&a.kind)];
    if a.required {
        parts.push("required".into());
    } else if !a.flag {
        parts.push("optional".into());
    }
    if let Some(d) = &a.default {
        parts.push(format!("default {d}"));
    }
    let help = a.help.as_deref().map(|h| format!(": {h}")).unwrap_or_default();
    format!("{name} — {}{help}", parts.join("; "))
}

fn kind_text(kind: &ArgKind) -> String {
    match kind {
        ArgKind::Enum(values) => format!("one of {}", values.join(", ")),
        ArgKind::Int { min, max } => match (*min, *max) {
            (i64::MIN, i64::MAX) => "whole number".into(),
            (i64::MIN, max) => format!("whole number, at most {max}"),
            (min, i64::MAX) => format!("whole number, at least {min}"),
            (min, max) => format!("whole number {min}..{max}"),
        },
        ArgKind::Duration => "duration (30s, 5m, 1h, 1d)".into(),
        ArgKind::String { max_len, pattern } => {
            let form = pattern
                .as_ref()
                .map(|re| format!(", matching `{}`", value::pattern_text(re)))
                .unwrap_or_default();
            format!("text, at most {max_len} characters{form}")
        }
        ArgKind::Id => "id (letters, digits, _ . : -)".into(),
        ArgKind::Ip { .. } => {
            "one public IPv4 or IPv6 address (not private, loopback, link-local or protected)".into()
        }
        ArgKind::Bool => "switch".into(),
        ArgKind::List(inner) => format!("comma-separated list, each {}", kind_text(inner)),
    }
}
