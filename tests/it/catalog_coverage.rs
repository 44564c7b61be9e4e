//! The shipped catalog against runbooks.md §1 (issue #17). The tables of §1
//! are parsed from `../shared/runbooks.md` (next to the crate; CI always has
//! it) into (profile, command words, risk, roles, approval) per row; every row
//! declared built below must be in the loaded catalog with that risk, those
//! roles and that approval. For each tracked profile, every §1 row is either
//! built or listed as not buildable yet with the reason, so nothing silently
//! disappears. The bot-native table (`internal` executor) is not parsed: those
//! rows are built-in commands, not catalog entries.

use crate::support::{config, shipped_catalog};
use opsbot::catalog::{ArgKind, Catalog};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Profiles whose every §1 row must appear in [`BUILT`], [`NOT_YET`] or [`OTHER_SLICE`].
const TRACKED: &[&str] = &["queue", "chat", "cap", "scrape", "pdf"];

/// Rows built, as (profile, ID).
const BUILT: &[(&str, &str)] = &[
    ("chat", "OPS-3"),
    ("chat", "AI-1"),
    ("chat", "AI-6"),
    ("chat", "D-1"),
    ("chat", "D-3"),
    ("chat", "D-4"),
    ("chat", "D-5"),
    ("chat", "D-6"),
    ("chat", "D-12"),
    ("chat", "D-13"),
    ("chat", "D-20"),
    ("chat", "D-21"),
    ("chat", "SEC-1"),
    ("queue", "OPS-4"),
    ("queue", "Q-2"),
    ("queue", "Q-3"),
    ("queue", "Q-4"),
    ("queue", "Q-5"),
    ("queue", "Q-6"),
    ("queue", "Q-7"),
    ("queue", "Q-8"),
    ("queue", "Q-9"),
    ("queue", "Q-10"),
    ("queue", "Q-12"),
    ("queue", "Q-13"),
    ("queue", "C-1"),
    ("queue", "C-2"),
    ("queue", "C-3"),
    ("queue", "C-4"),
    ("queue", "C-5"),
    ("queue", "C-6"),
    ("queue", "C-7"),
    ("queue", "C-8"),
    ("queue", "C-12"),
    ("queue", "D-1"),
    ("queue", "D-2"),
    ("queue", "D-3"),
    ("queue", "D-5"),
    ("queue", "D-8"),
    ("queue", "D-9"),
    ("queue", "D-10"),
    ("queue", "D-13"),
    ("queue", "C-9"),
    ("queue", "C-10"),
    ("queue", "C-11"),
    ("queue", "D-7"),
    ("queue", "Q-11"),
    ("cap", "OPS-1"),
    ("cap", "OPS-9"),
    ("cap", "OPS-12"),
    ("cap", "OPS-15"),
    ("cap", "OPS-16"),
    ("cap", "OPS-17"),
    ("cap", "OPS-18"),
    ("cap", "Q-1"),
    ("cap", "Q-14"),
    ("cap", "C-1"),
    ("cap", "D-1"),
    ("cap", "D-3"),
    ("cap", "D-5"),
    ("cap", "D-10"),
    ("cap", "D-11"),
    ("cap", "D-12"),
    ("cap", "D-13"),
    ("cap", "D-19"),
    ("cap", "DEP-1"),
    ("cap", "DEP-4"),
    ("cap", "DEP-5"),
    ("cap", "DEP-6"),
    ("cap", "Q-15"),
    ("cap", "C-10"),
    ("cap", "C-11"),
    ("cap", "D-18"),
    ("scrape", "OPS-2"),
    ("scrape", "OPS-6"),
    ("scrape", "OPS-7"),
    ("scrape", "OPS-8"),
    ("scrape", "OPS-11"),
    ("scrape", "S-1"),
    ("scrape", "S-2"),
    ("scrape", "S-3"),
    ("scrape", "S-4"),
    ("scrape", "S-5"),
    ("scrape", "S-6"),
    ("scrape", "AI-1"),
    ("scrape", "S-8"),
    ("pdf", "Q-16"),
    ("pdf", "Q-18"),
    ("pdf", "Q-19"),
    ("pdf", "D-3"),
    ("pdf", "D-5"),
    ("pdf", "D-10"),
    ("pdf", "D-13"),
    ("pdf", "D-22"),
    ("pdf", "D-23"),
    ("pdf", "D-24"),
    ("pdf", "D-25"),
    ("queue", "OPS-19"),
    ("queue", "OPS-22"),
    ("queue", "OPS-23"),
    ("queue", "OPS-26"),
    ("queue", "D-31"),
    ("chat", "OPS-19"),
    ("chat", "OPS-23"),
    ("chat", "OPS-26"),
    ("chat", "AI-8"),
    ("chat", "SEC-12"),
    ("cap", "OPS-19"),
    ("cap", "OPS-22"),
    ("cap", "OPS-23"),
    ("cap", "OPS-24"),
    ("cap", "OPS-26"),
    ("cap", "OPS-27"),
    ("cap", "OPS-28"),
    ("cap", "OPS-31"),
    ("cap", "OPS-36"),
    ("cap", "DEP-7"),
    ("cap", "DEP-8"),
    ("scrape", "OPS-19"),
    ("scrape", "OPS-22"),
    ("scrape", "OPS-23"),
    ("scrape", "OPS-29"),
    ("scrape", "OPS-32"),
    ("scrape", "OPS-35"),
    ("scrape", "AI-3"),
    ("scrape", "AI-4"),
    ("scrape", "AI-5"),
    ("scrape", "AI-8"),
    ("scrape", "BK-3"),
    ("scrape", "SEC-4"),
    ("scrape", "SEC-12"),
    ("scrape", "OPS-30"),
    ("pdf", "OPS-5"),
    ("pdf", "OPS-6"),
    ("pdf", "OPS-10"),
    ("pdf", "OPS-13"),
    ("pdf", "OPS-14"),
    ("pdf", "OPS-23"),
    ("pdf", "OPS-25"),
    ("pdf", "OPS-33"),
    ("pdf", "OPS-34"),
    ("pdf", "OPS-42"),
    ("pdf", "Q-17"),
    ("pdf", "D-26"),
    ("pdf", "D-27"),
    ("pdf", "D-28"),
    ("pdf", "D-29"),
    ("pdf", "D-30"),
    ("pdf", "DEP-11"),
    ("pdf", "DEP-12"),
    ("pdf", "ST-1"),
    ("pdf", "ST-2"),
    ("pdf", "ST-3"),
    ("pdf", "ST-4"),
    ("pdf", "ST-6"),
    ("pdf", "BK-1"),
    ("pdf", "BK-4"),
    ("pdf", "BK-6"),
    ("pdf", "BK-8"),
    ("pdf", "DR-1"),
    ("pdf", "DR-2"),
    ("pdf", "DR-3"),
    ("pdf", "DR-4"),
    ("pdf", "SEC-5"),
    ("pdf", "SEC-6"),
    ("pdf", "SEC-7"),
    ("pdf", "SEC-10"),
    ("pdf", "OPS-43"),
    ("cap", "BK-1"),
    ("cap", "BK-4"),
    ("scrape", "M-1"),
    ("scrape", "M-2"),
    ("scrape", "M-4"),
    ("scrape", "M-6"),
    ("scrape", "M-7"),
    ("scrape", "M-8"),
    ("scrape", "BK-1"),
    ("chat", "SEC-3"),
    ("scrape", "SEC-3"),
    ("queue", "D-14"),
    ("queue", "D-15"),
    ("queue", "D-16"),
    ("chat", "D-14"),
    ("chat", "D-17"),
    ("cap", "D-14"),
    ("cap", "D-15"),
    ("cap", "D-16"),
    ("cap", "D-17"),
    ("pdf", "D-14"),
    ("pdf", "D-17"),
    ("pdf", "SEC-8"),
    ("chat", "SEC-9"),
    ("pdf", "SEC-9"),
    ("scrape", "AI-2"),
    ("chat", "AI-7"),
    ("scrape", "OPS-20"),
    ("scrape", "OPS-21"),
    ("scrape", "S-9"),
    ("scrape", "SEC-1"),
    ("scrape", "SEC-2"),
    ("cap", "DEP-3"),
    ("cap", "RB-1"),
    ("cap", "RB-2"),
    ("scrape", "OPS-43"),
    ("chat", "SEC-7"),
    ("queue", "OPS-37"),
    ("cap", "OPS-37"),
    ("cap", "BK-5"),
    ("scrape", "M-5"),
    ("scrape", "M-9"),
    ("scrape", "M-10"),
    ("scrape", "BK-5"),
    ("scrape", "BK-7"),
    ("pdf", "ST-5"),
    ("scrape", "S-7"),
    ("cap", "DEP-2"),
    ("queue", "DEP-2"),
    ("scrape", "M-3"),
    ("pdf", "OPS-38"),
    ("pdf", "OPS-39"),
    ("pdf", "OPS-40"),
    ("pdf", "OPS-41"),
    ("pdf", "BK-7"),
    ("chat", "SEC-11"),
    ("chat", "DR-5"),
];

/// Rows of a tracked profile that the executors cannot express yet: (profile, ID, what is missing).
const NOT_YET: &[(&str, &str, &str)] = &[];

/// Rows of a tracked profile in §1 tables outside these slices (/deploy, /rollback, /backup).
const OTHER_SLICE: &[(&str, &str)] = &[
    ("chat", "RB-3"),
    ("chat", "BK-1"),
    ("chat", "BK-4"),
    ("chat", "BK-5"),
    ("queue", "DEP-9"),
    ("queue", "DEP-10"),
    ("queue", "RB-3"),
    ("queue", "BK-1"),
    ("queue", "BK-2"),
    ("queue", "BK-7"),
];

/// One §1 row for one profile.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    profile: String,
    /// Chat words of each syntax in the row (`queue stats`); OPS-30 has two.
    names: Vec<String>,
    /// Switches each syntax always gives (`--emergency` of RB-1): they pick
    /// the variant of a command whose variants have their own approvers.
    switches: Vec<Vec<String>>,
    /// `None` when the cell is not a single risk (`stop destructive, start write`).
    risk: Option<String>,
    roles: BTreeSet<String>,
    /// Approver roles of `2P …`; `None` for `—`.
    approvers: Option<BTreeSet<String>>,
    /// The row's "does" cell asks for a preview ("preview …", "card shows …").
    preview: bool,
    /// The approval cell ends in `BG` (break-glass).
    break_glass: bool,
    /// A row whose syntaxes differ in risk and roles (OPS-30: `stop
    /// destructive, start write` and `stop: sre · 2P …; start: oncall · —`),
    /// by the last chat word of each syntax.
    split: BTreeMap<String, Policy>,
}

/// Risk, requester roles and approver roles of one syntax of a split row.
#[derive(Debug, Clone, PartialEq)]
struct Policy {
    risk: String,
    roles: BTreeSet<String>,
    approvers: Option<BTreeSet<String>>,
}

/// `stop destructive, start write` with `stop: sre · 2P sre/eng-mgr; start:
/// oncall · —` → per word; empty when the cells are not of that shape.
fn split_policies(risk_cell: &str, role_cell: &str) -> BTreeMap<String, Policy> {
    let roles: BTreeMap<&str, &str> = role_cell
        .split("; ")
        .filter_map(|part| part.split_once(": "))
        .collect();
    risk_cell
        .split(", ")
        .filter_map(|part| {
            let (word, risk) = part.split_once(' ')?;
            let (roles, approvers) = role_and_approval(roles.get(word)?);
            let policy = Policy {
                risk: risk.to_string(),
                roles,
                approvers,
            };
            Some((word.to_string(), policy))
        })
        .collect()
}

fn runbooks() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/runbooks.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): the catalog coverage test needs runbooks.md from the shared \
             directory next to the crate (CI always has it)",
            path.display()
        )
    })
}

/// Splits a Markdown table line on unescaped `|`.
fn cells(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = line.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    // The empty cells before the first and after the last `|`.
    out.into_iter()
        .skip(1)
        .map(|c| c.trim().to_string())
        .collect::<Vec<_>>()
        .split_last()
        .map(|(_, rest)| rest.to_vec())
        .unwrap_or_default()
}

/// `/queue stats [<q:queue>]` → `queue stats`: the words before the first argument.
fn command_words(syntax: &str) -> String {
    syntax
        .trim_start_matches('/')
        .split_whitespace()
        .take_while(|w| !w.starts_with(['<', '[', '-']) && !w.contains('{'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The backticked `/…` spans of a syntax cell, as chat words.
fn syntaxes(cell: &str) -> Vec<String> {
    spans(cell).map(command_words).collect()
}

fn spans(cell: &str) -> impl Iterator<Item = &str> {
    cell.split('`').skip(1).step_by(2).filter(|s| s.starts_with('/'))
}

/// `/rollback --emergency [--disable <x>]` → `["emergency"]`: the flags
/// outside brackets.
fn required_flags(syntax: &str) -> Vec<String> {
    let mut depth = 0i32;
    let mut out = Vec::new();
    for w in syntax.split_whitespace() {
        if depth == 0 && w.starts_with("--") {
            out.push(w.trim_start_matches('-').to_string());
        }
        depth += w.matches('[').count() as i32 - w.matches(']').count() as i32;
    }
    out
}

fn role_names(s: &str) -> BTreeSet<String> {
    s.split(['/', ' '])
        .filter(|w| !w.is_empty() && *w != "or")
        .map(|w| if w == "eng-mgr" { "eng-manager" } else { w }.to_string())
        .collect()
}

/// `oncall · 2P sre/eng-mgr · BG` → roles, approvers.
fn role_and_approval(cell: &str) -> (BTreeSet<String>, Option<BTreeSet<String>>) {
    let mut parts = cell.split(" · ");
    let roles = role_names(parts.next().unwrap_or(""));
    let approvers = parts.next().and_then(|a| {
        let a = a.split(" (").next().unwrap_or(a);
        a.strip_prefix("2P ").map(role_names)
    });
    (roles, approvers)
}

fn profile_of(seed: &str) -> &'static str {
    match seed {
        "000" => "cap",
        "001" => "scrape",
        "002" => "chat",
        "003" => "queue",
        "004" => "pdf",
        other => panic!("unknown seed prefix {other}"),
    }
}

/// Profiles a row applies to: the seeds its `seed` cell cites.
fn profiles(seed_cell: &str) -> BTreeSet<&'static str> {
    let re = regex::Regex::new(r"\b(00[0-4])\b").unwrap();
    re.captures_iter(seed_cell)
        .map(|c| profile_of(c.get(1).unwrap().as_str()))
        .collect()
}

/// Every row of the §1 tables that name an executor, once per profile.
fn parse_section_1(text: &str) -> Vec<Row> {
    let start = text
        .find("## 1. Command catalog")
        .expect("runbooks.md has `## 1. Command catalog`");
    let end = text[start..].find("\n## 2.").map_or(text.len(), |e| start + e);
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for line in text[start..end].lines() {
        if !line.starts_with('|') {
            header = None;
            continue;
        }
        let c = cells(line);
        if c.first().map(String::as_str) == Some("ID") {
            header = Some(c);
            continue;
        }
        let Some(h) = &header else { continue };
        let col = |name: &str| h.iter().position(|x| x == name);
        let (Some(syntax), Some(does), Some(risk), Some(role), Some(seed), Some(_)) = (
            col("syntax"),
            col("does"),
            col("risk"),
            col("role · approval"),
            col("seed"),
            col("executor · target"),
        ) else {
            continue;
        };
        if c[0].chars().all(|x| x == '-') {
            continue;
        }
        let (roles, approvers) = role_and_approval(&c[role]);
        let risk_cell = c[risk].split(" (").next().unwrap_or("").to_string();
        let single = ["read", "write", "destructive"].contains(&risk_cell.as_str());
        for profile in profiles(&c[seed]) {
            rows.push(Row {
                id: c[0].clone(),
                profile: profile.to_string(),
                names: syntaxes(&c[syntax]),
                switches: spans(&c[syntax]).map(required_flags).collect(),
                risk: single.then(|| risk_cell.clone()),
                roles: roles.clone(),
                approvers: approvers.clone(),
                preview: c[does].contains("preview") || c[does].contains("card shows"),
                break_glass: c[role].trim_end().ends_with("· BG"),
                split: split_policies(&risk_cell, &c[role]),
            });
        }
    }
    rows
}

fn catalog() -> Catalog {
    shipped_catalog(&config(""), "http://127.0.0.1:1")
}

#[test]
fn the_parser_reads_the_shapes_used_in_section_1() {
    assert_eq!(cells(r"| a | b \| c | d |"), ["a", "b | c", "d"]);
    assert_eq!(command_words("/queue stats [<q:queue>]"), "queue stats");
    assert_eq!(command_words("/db reindex <k:{index,table}> <n:x>"), "db reindex");
    assert_eq!(
        command_words("/ops restart app [--heap-mb <int 1024..8192>]"),
        "ops restart app"
    );
    assert_eq!(
        syntaxes("`/ops stop <s:{backend,frontend}>` / `/ops start <s>`"),
        ["ops stop", "ops start"]
    );
    assert_eq!(
        required_flags("/rollback --emergency [--disable <list<feature>>] [--reason <text>]"),
        ["emergency"]
    );
    assert!(required_flags("/rollback [--reason <text>]").is_empty());
    let (roles, approvers) = role_and_approval("dba or sre · 2P sre/eng-mgr · BG");
    assert_eq!(roles, role_names("dba sre"));
    assert_eq!(approvers, Some(role_names("sre eng-manager")));
    let (_, none) = role_and_approval("oncall · —");
    assert_eq!(none, None);
    let split = split_policies(
        "stop destructive, start write",
        "stop: sre · 2P sre/eng-mgr; start: oncall · —",
    );
    assert_eq!(
        split["stop"],
        Policy {
            risk: "destructive".into(),
            roles: role_names("sre"),
            approvers: Some(role_names("sre eng-manager")),
        }
    );
    assert_eq!(
        (split["start"].risk.as_str(), split["start"].approvers.clone()),
        ("write", None)
    );
    assert!(split_policies("read", "anyone · —").is_empty());
    assert_eq!(
        profiles("000 §P0; 002 §DB Connection; 003 §1"),
        ["cap", "chat", "queue"].into_iter().collect()
    );
}

#[test]
fn every_built_row_is_in_the_catalog_as_section_1_proposes() {
    let rows = parse_section_1(&runbooks());
    assert!(rows.len() > 150, "parsed only {} rows of §1", rows.len());
    let catalog = catalog();
    let mut problems = Vec::new();
    for (profile, id) in BUILT {
        let Some(row) = rows.iter().find(|r| r.id == *id && r.profile == *profile) else {
            problems.push(format!("{profile} {id}: no such row in runbooks.md §1"));
            continue;
        };
        for (name, switches) in row.names.iter().zip(&row.switches) {
            let Some(cmd) = catalog.get(profile, name) else {
                problems.push(format!("{profile} {id}: `/{name}` is not in the catalog"));
                continue;
            };
            // The row's form: its switches on, every other one off.
            let form: BTreeMap<String, String> = switches
                .iter()
                .filter(|f| cmd.arg(f).is_some_and(|a| matches!(a.kind, ArgKind::Bool)))
                .map(|f| (f.clone(), "true".to_string()))
                .collect();
            let approval = cmd.approval(&form);
            let word = name.rsplit(' ').next().unwrap_or_default();
            let want = match row.split.get(word) {
                Some(p) => p.clone(),
                None => Policy {
                    risk: row
                        .risk
                        .clone()
                        .expect("built rows have a single risk or one per syntax"),
                    roles: row.roles.clone(),
                    approvers: row.approvers.clone(),
                },
            };
            let risk = want.risk.as_str();
            if cmd.risk.as_str() != risk {
                problems.push(format!("{profile} {id}: risk {} (§1: {risk})", cmd.risk.as_str()));
            }
            let roles: BTreeSet<String> = cmd.roles.iter().cloned().collect();
            if roles != want.roles {
                problems.push(format!("{profile} {id}: roles {roles:?} (§1: {:?})", want.roles));
            }
            let approvers = approval.map(|a| a.roles.iter().cloned().collect::<BTreeSet<_>>());
            if approvers != want.approvers {
                problems.push(format!(
                    "{profile} {id}: approval {approvers:?} (§1: {:?})",
                    want.approvers
                ));
            }
            // §0: every destructive action shows its preview on the card (a
            // write without approval, like pdf Q-19, has no card to show it on).
            if row.preview && risk == "destructive" && cmd.preview.is_none() {
                problems.push(format!(
                    "{profile} {id}: §1 shows a preview on the card; the command has none"
                ));
            }
            let bg = approval.is_some_and(|a| a.break_glass);
            if bg != row.break_glass {
                problems.push(format!(
                    "{profile} {id}: break-glass {bg} (§1: {})",
                    row.break_glass
                ));
            }
            if let Some(a) = approval {
                if (a.count, a.ttl.as_secs()) != (1, 900) {
                    problems.push(format!("{profile} {id}: approval is not one person within 15m"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_row_of_a_tracked_profile_is_built_or_listed_with_a_reason() {
    let rows = parse_section_1(&runbooks());
    let built: BTreeSet<(&str, &str)> = BUILT.iter().copied().collect();
    let not_yet: BTreeSet<(&str, &str)> = NOT_YET.iter().map(|(p, id, _)| (*p, *id)).collect();
    let other: BTreeSet<(&str, &str)> = OTHER_SLICE.iter().copied().collect();
    assert!(built.is_disjoint(&not_yet), "{:?}", built.intersection(&not_yet));
    assert!(built.is_disjoint(&other) && not_yet.is_disjoint(&other));
    assert!(NOT_YET.iter().all(|(_, _, why)| !why.is_empty()));
    let mut unaccounted = Vec::new();
    for r in rows.iter().filter(|r| TRACKED.contains(&r.profile.as_str())) {
        let key = (r.profile.as_str(), r.id.as_str());
        if !built.contains(&key) && !not_yet.contains(&key) && !other.contains(&key) {
            unaccounted.push(format!("{} {}", r.profile, r.id));
        }
    }
    assert!(
        unaccounted.is_empty(),
        "rows of runbooks.md §1 neither built nor listed in NOT_YET/OTHER_SLICE: {}",
        unaccounted.join(", ")
    );
    let listed = not_yet.iter().chain(&other);
    let stale: Vec<_> = listed
        .filter(|(p, id)| !rows.iter().any(|r| r.profile == *p && r.id == *id))
        .collect();
    assert!(stale.is_empty(), "listed but not in runbooks.md §1: {stale:?}");
}

#[test]
fn rows_listed_as_not_yet_are_not_half_built() {
    let catalog = catalog();
    let rows = parse_section_1(&runbooks());
    for (profile, id, why) in NOT_YET {
        for r in rows.iter().filter(|r| r.profile == *profile && r.id == *id) {
            for name in &r.names {
                assert!(
                    catalog.get(profile, name).is_none(),
                    "{profile} {id} is listed as not buildable ({why}) but `/{name}` is in the catalog"
                );
            }
        }
    }
}
