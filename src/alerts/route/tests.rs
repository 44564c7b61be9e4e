use super::*;
use crate::config::Config;
use std::collections::HashMap;
use std::path::Path;

type Pairs<'a> = &'a [(&'a str, &'a str)];
/// `(route, level, opens an incident)`.
type Want<'a> = (&'a str, Option<&'a str>, bool);

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The routes and problems of a config file's text.
fn load_config(config: &Config) -> (RouteTree, Vec<String>) {
    let roles = crate::auth::Roles::new(&config.roles).names();
    let (policies, mut problems) = crate::app::policies(config, &roles);
    let (tree, more) = crate::app::alert_routes(config, &policies);
    problems.extend(more);
    (tree, problems.iter().map(ToString::to_string).collect())
}

fn load_text(text: &str) -> (RouteTree, Vec<String>) {
    let config = Config::parse(Path::new("c.toml"), text, &HashMap::new()).expect("config");
    load_config(&config)
}

/// `(route, level, opens incident)` of each placement.
fn placed(tree: &RouteTree, pairs: &[(&str, &str)]) -> Vec<(String, Option<String>, bool)> {
    tree.place(&labels(pairs))
        .into_iter()
        .map(|p| {
            (
                p.route.to_string(),
                p.level.map(|l| l.label.clone()),
                p.opens_incident,
            )
        })
        .collect()
}

fn one(tree: &RouteTree, pairs: &[(&str, &str)]) -> (String, Option<String>, bool) {
    let mut all = placed(tree, pairs);
    assert_eq!(all.len(), 1, "{pairs:?} → {all:?}");
    all.remove(0)
}

const POLICY: &str = r#"
[policies.queue]
scale = ["P0", "P1", "P2"]
channel = "slack:CQUEUE"
[policies.queue.P0]
ack = "5m"
steps = [{ after = "0s", to = ["role:oncall"] }]
[policies.queue.P1]
ack = "15m"
steps = [{ after = "0s", to = ["role:oncall"] }]
[policies.queue.P2]
ack = "1h"
steps = [{ after = "0s", to = ["role:oncall"] }]
"#;

#[test]
fn matchers_parse_and_match_as_in_alertmanager() {
    let l = labels(&[("alertname", "HighErrorRate"), ("job", "chat-api")]);
    let cases = [
        ("alertname=HighErrorRate", true),
        ("alertname = \"HighErrorRate\"", true),
        ("alertname!=\"HighErrorRate\"", false),
        ("job=~\"chat-.*\"", true),
        ("job=~\"chat\"", false), // anchored: no partial match
        ("job!~\"queue-.*\"", true),
        ("missing=\"\"", true), // a missing label is empty
        ("missing!=\"\"", false),
        ("job=~\"chat-api|queue-api\"", true),
        (r#"alertname="High\"ErrorRate""#, false),
    ];
    for (m, want) in cases {
        let parsed = Matcher::parse(m).unwrap_or_else(|e| panic!("{m}: {e}"));
        assert_eq!(parsed.matches(&l), want, "{m}");
    }
    for bad in ["=x", "job", "job=~\"(\"", "job=\"open", "9job=x", "job ~ x"] {
        assert!(Matcher::parse(bad).is_err(), "{bad} should not parse");
    }
    let m = Matcher::parse(r#"summary="say \"hi\" \\ bye""#).unwrap();
    assert_eq!((m.op, m.value.as_str()), (Op::Eq, r#"say "hi" \ bye"#));
}

#[test]
fn the_shipped_routes_load_and_send_each_seed_system_to_its_profile() {
    let config = Config::load(Path::new("config/opsbot.toml"), &HashMap::new()).expect("shipped config");
    let (tree, problems) = load_config(&config);
    assert!(problems.is_empty(), "{problems:#?}");
    let matrix: &[(Pairs, Want)] = &[
        // 002 (chat): the seed's own rule names, by name alone.
        (
            &[("alertname", "HighErrorRate"), ("severity", "critical")],
            ("chat", Some("P1"), true),
        ),
        (
            &[
                ("alertname", "DatabaseConnectionFailure"),
                ("severity", "critical"),
            ],
            ("chat", Some("P1"), true),
        ),
        (
            &[("alertname", "AIServiceDown"), ("severity", "warning")],
            ("chat", Some("P3"), false),
        ),
        (
            &[("alertname", "SlowResponseTime"), ("severity", "warning")],
            ("chat", Some("P3"), false),
        ),
        (
            &[("alertname", "HighMemoryUsage"), ("severity", "warning")],
            ("chat", Some("P3"), false),
        ),
        // A system label wins over a name another seed uses.
        (
            &[
                ("alertname", "HighErrorRate"),
                ("system", "queue"),
                ("severity", "critical"),
            ],
            ("queue", Some("P1"), true),
        ),
        // 000 (cap): auto-rollback triggers are P0, KPIs critical P1, warnings alert only.
        (
            &[("alertname", "CapErrorRateHigh"), ("severity", "emergency")],
            ("cap", Some("P0"), true),
        ),
        (
            &[("alertname", "CapMemoryHigh"), ("severity", "critical")],
            ("cap", Some("P1"), true),
        ),
        (
            &[("alertname", "CapMemoryHigh"), ("severity", "warning")],
            ("cap", Some("P3"), false),
        ),
        // 001 (scrape): error rate > 10 % is P2 and opens an incident.
        (
            &[("alertname", "ScrapeErrorRateHigh"), ("severity", "critical")],
            ("scrape", Some("P2"), true),
        ),
        (
            &[("alertname", "ScrapeCPUHigh"), ("severity", "warning")],
            ("scrape", Some("P3"), false),
        ),
        // 003 (queue): health P0; warnings have no level (channel only).
        (
            &[("alertname", "QueueHealthDown"), ("severity", "emergency")],
            ("queue", Some("P0"), true),
        ),
        (
            &[("alertname", "QueueWaitingHigh"), ("severity", "warning")],
            ("queue", None, false),
        ),
        (
            &[("alertname", "QueueWaitingHigh"), ("severity", "error")],
            ("queue", Some("P2"), true),
        ),
        // 004 (pdf), through its PagerDuty integration.
        (
            &[("integration", "pdf"), ("severity", "critical")],
            ("pdf", Some("SEV1"), true),
        ),
        (
            &[("integration", "pdf"), ("severity", "warning")],
            ("pdf", Some("SEV3"), false),
        ),
        // Severity values are matched without regard to case.
        (
            &[("alertname", "PdfDiskHigh"), ("severity", "ERROR")],
            ("pdf", Some("SEV2"), true),
        ),
        // Nothing matched: the root keeps it.
        (
            &[("alertname", "SomethingElse"), ("severity", "critical")],
            (ROOT, None, false),
        ),
        (&[], (ROOT, None, false)),
    ];
    for (pairs, (route, level, incident)) in matrix {
        assert_eq!(
            one(&tree, pairs),
            (route.to_string(), level.map(String::from), *incident),
            "{pairs:?}"
        );
    }
    let chat = tree.place(&labels(&[("alertname", "HighErrorRate")]));
    assert_eq!(chat[0].destinations, policy_channel(&config, "chat"));
    assert_eq!(chat[0].group_key, r#"{alertname="HighErrorRate"}"#);
}

fn policy_channel(config: &Config, profile: &str) -> Vec<Destination> {
    let roles = crate::auth::Roles::new(&config.roles).names();
    crate::app::policies(config, &roles).0.profiles[profile]
        .destinations
        .clone()
}

const TREE: &str = r#"
[alerts]
to = ["slack:CROOT"]
group_by = ["alertname"]

[[alerts.routes]]
name = "db"
match = ['team="db"']
to = ["discord:42"]
continue = true

[[alerts.routes]]
name = "queue"
profile = "queue"
match = ['system="queue"']
severity = { critical = "P0", warning = "P2" }
incident = "P1"
group_by = ["alertname", "queue"]

[[alerts.routes.routes]]
name = "queue-cache"
match = ['alertname=~"Cache.*"']
severity = { warning = "P1" }

[[alerts.routes.routes]]
name = "queue-muted"
match = ['env!="prod"']
to = ["slack:CNOISE"]
"#;

#[test]
fn children_continue_and_inheritance() {
    let (tree, problems) = load_text(&format!("{POLICY}{TREE}"));
    assert!(problems.is_empty(), "{problems:#?}");
    let prod = [("system", "queue"), ("env", "prod")];
    // No child matches: the parent takes it, with its own mapping.
    let mut l = prod.to_vec();
    l.extend([("alertname", "QueueWaitingHigh"), ("severity", "critical")]);
    assert_eq!(one(&tree, &l), ("queue".into(), Some("P0".into()), true));
    // A child inherits profile and incident, and overrides the mapping.
    let mut l = prod.to_vec();
    l.extend([("alertname", "CacheHitRateLow"), ("severity", "warning")]);
    assert_eq!(one(&tree, &l), ("queue-cache".into(), Some("P1".into()), true));
    // …and the parent's mapping when it sets none.
    let l = [("system", "queue"), ("env", "dev"), ("severity", "critical")];
    assert_eq!(one(&tree, &l), ("queue-muted".into(), Some("P0".into()), true));
    // `continue`: the db route and the next matching sibling both take it.
    let both = placed(&tree, &[("team", "db"), ("system", "queue"), ("env", "prod")]);
    let names: Vec<&str> = both.iter().map(|(r, _, _)| r.as_str()).collect();
    assert_eq!(names, ["db", "queue"]);
    // Inherited and own destinations, and group keys per route.
    let all = tree.place(&labels(&[
        ("team", "db"),
        ("system", "queue"),
        ("env", "prod"),
        ("queue", "ai"),
        ("alertname", "A"),
    ]));
    assert_eq!(all[0].destinations[0].channel, "42");
    assert_eq!(all[1].destinations[0].channel, "CQUEUE", "the profile's channel");
    assert_eq!(all[0].group_key, r#"{alertname="A"}"#);
    assert_eq!(all[1].group_key, r#"{alertname="A",queue="ai"}"#);
    let muted = tree.place(&labels(&[("system", "queue")]));
    assert_eq!(muted[0].destinations[0].channel, "CNOISE");
}

#[test]
fn group_by_everything_and_quoting_in_keys() {
    let text = "[alerts]\nto = [\"slack:C\"]\ngroup_by = [\"...\"]\n";
    let (tree, problems) = load_text(text);
    assert!(problems.is_empty(), "{problems:#?}");
    let key = tree.root.group_key(&labels(&[("b", "say \"x\""), ("a", "1")]));
    assert_eq!(key, r#"{a="1",b="say \"x\""}"#);
    let none = RouteTree::default();
    assert_eq!(none.root.group_key(&labels(&[])), r#"{alertname=""}"#);
}

#[test]
fn problems_name_the_line_and_the_fault() {
    let text = format!(
        "{POLICY}\n{}",
        r##"[alerts]
match = ['a="b"']

[[alerts.routes]]
name = "x"
match = ['job=~"("']
to = ["#general"]

[[alerts.routes]]
name = "x"
profile = "nosuch"

[[alerts.routes]]
profile = "queue"
severity = { critical = "P9" }
incident = "P7"

[[alerts.routes]]
name = "lonely"
incident = "P1"
"##
    );
    let (_, problems) = load_text(&text);
    let all = problems.join("\n");
    let line = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{needle} not in the text"))
    };
    for (at, needle) in [
        (
            line("match = ['a=\"b\"']"),
            "the root route and matches everything",
        ),
        (line("job=~"), "bad regex"),
        (
            line("#general"),
            "channel `#general` must be `slack:<channel id>`",
        ),
        (line("name = \"x\"") + 5, "route name `x` is used twice"),
        (line("nosuch"), "profile `nosuch` has no [policies.nosuch]"),
        (line("P9"), "`P9` is not a level of profile `queue` (P0, P1, P2)"),
        (line("P7"), "`P7` is not a level of profile `queue`"),
        (line("incident = \"P1\""), "`incident` needs a `profile`"),
    ] {
        let want = format!("c.toml:{at}: alerts: ");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with(&want) && p.contains(needle)),
            "missing {want}…{needle} in\n{all}"
        );
    }
    assert!(all.contains("needs a `name`"), "{all}");
}

#[test]
fn no_section_is_one_root_route_and_a_root_needs_somewhere_to_go() {
    let (tree, problems) = load_text("");
    assert!(problems.is_empty());
    assert_eq!(one(&tree, &[("alertname", "X")]), (ROOT.into(), None, false));
    let (_, problems) = load_text("[alerts]\ngroup_by = [\"alertname\"]\n");
    assert!(
        problems.iter().any(|p| p.contains("[alerts] needs `to`")),
        "{problems:#?}"
    );
}
