//! Table of parser inputs with `insta` snapshots of the result or the
//! user-facing error, against a test catalog and the shipped one.

use super::*;
use crate::catalog::{load_dir, load_str, Context};
use std::collections::{BTreeSet, HashMap};

const ROLES: [&str; 9] = [
    "anyone",
    "support",
    "oncall",
    "sre",
    "dba",
    "security",
    "tech-lead",
    "eng-manager",
    "exec",
];

/// Two profiles (`queue`, `chat`) sharing `ops health`, and one command per
/// argument kind.
const TEST_CATALOG: &str = r#"
[target.api]
kind = "http"
url = "http://127.0.0.1:1"

[command.queue."ops health"]
summary = "Queue health"
risk = "read"
roles = ["anyone"]
action = { http = { target = "api", path = "/health" } }

[command.chat."ops health"]
summary = "Chat health"
risk = "read"
roles = ["anyone"]
action = { http = { target = "api", path = "/api/health" } }

[command.queue."queue retry"]
summary = "Retry failed jobs"
args = { queue = { kind = "enum", values = ["ai-analysis", "notifications"], help = "the Bull queue" } }
risk = "write"
roles = ["oncall"]
approve = { roles = ["sre", "eng-manager"], count = 1, ttl = "15m" }
action = { http = { method = "POST", target = "api", path = "/q/{queue}/retry" } }

[command.queue."queue clean"]
summary = "Delete old jobs"
args = { queue = { kind = "enum", values = ["ai-analysis", "notifications"] }, grace = { kind = "duration", flag = true, default = "24h", help = "keep younger jobs" }, dry-run = { kind = "bool", flag = true } }
risk = "destructive"
roles = ["oncall"]
approve = { roles = ["sre"], count = 2, ttl = "1h" }
action = { http = { method = "POST", target = "api", path = "/q/{queue}/clean" } }

[command.queue."queue jobs"]
summary = "List jobs"
args = { state = { kind = "list", of = "enum", values = ["failed", "active", "waiting"], flag = true, default = "failed" }, limit = { kind = "int", min = 1, max = 50, flag = true, default = 10 }, ids = { kind = "list", of = "int", min = 1, max = 999, flag = true } }
risk = "read"
roles = ["support"]
action = { http = { target = "api", path = "/jobs", query = { state = "{state}", limit = "{limit}" } } }

[command.queue."queue job"]
summary = "Show one job"
args = { id = { kind = "id" }, note = { kind = "string", max_len = 10, optional = true } }
risk = "read"
roles = ["support"]
action = { http = { target = "api", path = "/job/{id}" } }

[command.chat."chat ticket"]
summary = "Find a ticket"
args = { ref = { kind = "string", regex = "T-[0-9]+" }, verbose = { kind = "bool", flag = true, default = false } }
risk = "read"
roles = ["support"]
action = { http = { target = "api", path = "/t/{ref}" } }
"#;

fn ctx_roles() -> BTreeSet<String> {
    ROLES.iter().map(|r| r.to_string()).collect()
}

fn test_catalog() -> Catalog {
    let roles = ctx_roles();
    let env = HashMap::new();
    load_str(
        "test.toml",
        TEST_CATALOG,
        &Context {
            roles: &roles,
            env: &env,
        },
    )
    .expect("test catalog loads")
}

fn shipped_catalog() -> Catalog {
    let roles = ctx_roles();
    let env = HashMap::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("commands");
    load_dir(
        &dir,
        &Context {
            roles: &roles,
            env: &env,
        },
    )
    .expect("shipped catalog loads")
}

fn profiles(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// `profile:name {args}` for a run, `builtin …`, `help:` + text, or `error:` + text.
fn render(result: Result<Parsed<'_>, UsageError>) -> String {
    match result {
        Ok(Parsed::Run(r)) => format!(
            "{}:{} {:?}\ndisplay: {}",
            r.command.profile,
            r.command.name,
            r.args,
            r.display()
        ),
        Ok(Parsed::Builtin(b)) => format!("builtin {b:?}"),
        Ok(Parsed::Help(text)) => format!("help:\n{text}"),
        Err(e) => format!("error:\n{e}"),
    }
}

/// Snapshots each case as `> input` then the rendering.
fn run_table(catalog: &Catalog, scope: &Scope, prefix: &str, cases: &[(&str, &str)]) {
    for (name, input) in cases {
        let out = render(parse(catalog, scope, input));
        insta::assert_snapshot!(format!("{prefix}_{name}"), format!("> {input}\n{out}"));
    }
}

#[test]
fn table_test_catalog_both_profiles() {
    let catalog = test_catalog();
    let enabled = profiles(&["chat", "queue"]);
    let scope = Scope {
        enabled_profiles: &enabled,
        channel_profile: None,
    };
    let cases = [
        // Quoting, slash optional, defaults, normalization.
        ("enum_ok", "/queue retry ai-analysis"),
        ("no_slash_spaces", "   queue   retry   AI-Analysis  "),
        ("enum_did_you_mean", "/queue retry ai-analisys"),
        ("enum_no_suggestion", "/queue retry video"),
        ("missing_positional", "/queue retry"),
        ("too_many", "/queue retry ai-analysis notifications"),
        ("defaults_filled", "/queue clean notifications"),
        ("duration_flag", "/queue clean ai-analysis --grace 90m --dry-run"),
        (
            "duration_eq",
            "/queue clean ai-analysis --grace=1h30m --dry-run=false",
        ),
        ("duration_bad", "/queue clean ai-analysis --grace soon"),
        ("flag_needs_value", "/queue clean ai-analysis --grace"),
        ("flag_did_you_mean", "/queue clean ai-analysis --grce 1h"),
        ("flag_unknown", "/queue clean ai-analysis --force"),
        ("flag_twice", "/queue clean ai-analysis --grace 1h --grace 2h"),
        ("bool_bad", "/queue clean ai-analysis --dry-run=maybe"),
        ("positional_by_name", "/queue clean --queue notifications"),
        ("int_ok", "/queue jobs --limit 007"),
        ("int_range", "/queue jobs --limit 51"),
        ("int_not_number", "/queue jobs --limit ten"),
        ("list_ok", "/queue jobs --state failed,ACTIVE --ids 1,2,03"),
        ("list_bad_item", "/queue jobs --state failed,stuck"),
        ("list_empty_item", "/queue jobs --ids 1,,2"),
        ("list_int_range", "/queue jobs --ids 1,1000"),
        ("id_ok", "/queue job job:42_a.b-c"),
        ("id_bad", "/queue job 'job 42'"),
        ("string_quoted", r#"/queue job j1 "hi there""#),
        ("string_smart_quotes", "/queue job j1 “it’s ok”"),
        ("string_escaped_quote", r#"/queue job j1 "say \"x\"""#),
        ("string_too_long", "/queue job j1 'eleven char'"),
        ("string_regex_ok", "/chat ticket T-123 --verbose"),
        ("string_regex_bad", "/chat ticket 123"),
        ("unterminated_quote", r#"/queue job j1 "oops"#),
        // Commands and did-you-mean.
        ("subcommand_typo", "/queue retyr ai-analysis"),
        ("group_typo", "/qeue retry ai-analysis"),
        ("group_typo_unknown_sub", "/qeue frob"),
        ("group_typo_only", "/qeue"),
        ("subcommand_unknown", "/queue frobnicate"),
        ("group_alone", "/queue"),
        ("totally_unknown", "/deploy prod"),
        ("empty", ""),
        ("blank", " \t "),
        ("slash_only", "/"),
        ("builtin_typo", "/aprove a12"),
        ("lone_quote", "\""),
        ("bare_dashes", "/queue job j1 --"),
        ("dash_eq", "/queue job j1 --=x"),
        ("only_flags", "/--sys queue"),
        ("apostrophe_word", "/queue job j1 don't"),
        // Profiles.
        ("ambiguous", "/ops health"),
        ("sys_flag", "/ops health --sys queue"),
        ("sys_eq_first", "/ops --sys=chat health"),
        ("sys_not_enabled", "/ops health --sys pdf"),
        ("sys_without_command", "/queue retry ai-analysis --sys chat"),
        ("sys_missing_value", "/ops health --sys"),
        // Built-ins.
        ("approve", "/approve a12"),
        ("approve_upper", "/approve A7"),
        ("approve_number", "approve 0012"),
        ("approve_bad", "/approve xyz"),
        ("approve_missing", "/approve"),
        ("approve_extra", "/approve a1 a2"),
        ("reject_reason", "/reject a3 not during \"the freeze\""),
        ("reject_no_reason", "/reject 3"),
        ("reject_missing", "/reject"),
        ("cancel", "/cancel a9"),
        ("approvals", "/approvals"),
        ("approvals_extra", "/approvals all"),
        ("done", "/done G1A2B3C4D 2"),
        ("done_no_step", "/done g1a2b3c4d"),
        ("done_bad_step", "/done g1a2b3c4d two"),
        ("done_zero_step", "/done g1a2b3c4d 0"),
        ("done_bad_id", "/done a12 2"),
        ("done_extra", "/done g1a2b3c4d 2 3"),
        ("abort", "/abort g1a2b3c4d"),
        ("abort_missing", "/abort"),
        ("abort_extra", "/abort g1a2b3c4d now"),
        // Help.
        ("help_all", "/help"),
        ("help_group", "/help queue"),
        ("help_group_suffix", "/queue help"),
        ("help_command", "/queue clean help"),
        ("help_command_prefix", "/help queue jobs"),
        ("help_flag", "/queue job --help"),
        ("help_both_profiles", "/help ops health"),
        ("help_builtin", "/help reject"),
        ("help_builtin_suffix", "/approve help"),
        ("help_unknown", "/help queue retyr"),
    ];
    run_table(&catalog, &scope, "test", &cases);
}

#[test]
fn table_channel_binding_and_disabled_profiles() {
    let catalog = test_catalog();
    let both = profiles(&["chat", "queue"]);
    let chat_only = profiles(&["chat"]);
    let bound = Scope {
        enabled_profiles: &both,
        channel_profile: Some("chat"),
    };
    run_table(
        &catalog,
        &bound,
        "bound",
        &[
            ("channel_picks", "/ops health"),
            ("sys_overrides_channel", "/ops health --sys queue"),
            ("channel_without_command", "/queue retry ai-analysis"),
        ],
    );
    let narrow = Scope {
        enabled_profiles: &chat_only,
        channel_profile: None,
    };
    run_table(
        &catalog,
        &narrow,
        "chat_only",
        &[
            ("single_profile", "/ops health"),
            ("hidden_command", "/queue retry ai-analysis"),
            ("help_all", "/help"),
        ],
    );
}

#[test]
fn table_shipped_catalog() {
    let catalog = shipped_catalog();
    let enabled = profiles(&["chat", "queue"]);
    let scope = Scope {
        enabled_profiles: &enabled,
        channel_profile: None,
    };
    run_table(
        &catalog,
        &scope,
        "shipped",
        &[
            ("queue_stats", "/queue stats"),
            ("queue_clean", "/queue clean ai-analysis"),
            ("queue_retry_typo", "/queue retyr ai-analysis"),
            ("group_typo", "/qeue stats"),
            ("subcommand_unknown", "/queue frobnicate"),
            ("cache_info", "/cache info memory"),
            ("cache_info_bad", "/cache info mem"),
            ("ops_ambiguous", "/ops health"),
            ("help_all", "/help"),
            ("help_queue_retry", "/queue retry help"),
        ],
    );
}

#[test]
fn odd_inputs_never_panic() {
    let catalog = test_catalog();
    let enabled = profiles(&["chat", "queue"]);
    let scope = Scope {
        enabled_profiles: &enabled,
        channel_profile: None,
    };
    let long = format!("/queue job {} {}", "x".repeat(100_000), "word ".repeat(10_000));
    let many_words = "queue ".repeat(50_000);
    let odd = [
        "\"",
        "'",
        "“",
        "--",
        "--=x",
        "/--",
        "/ --sys",
        "--sys=",
        "/queue --",
        "/queue job --=x",
        "/queue job \"\"",
        "/queue jobs --limit 99999999999999999999999",
        "/queue clean ai-analysis --grace 99999999999999999999d",
        "/ops health --sys \"\"",
        "ünïcödé 🚀 ∞",
        "/queue job 🚀",
        "/queue job \u{0}",
        "\u{feff}/help",
        "/reject a1 \"",
        "/approve 99999999999999999999999",
        "/approve a",
        "/approve -1",
        "\\",
        "/help \"",
        "/queue jobs --state ,",
        "/queue jobs --ids=",
        "/queue\u{a0}retry\u{a0}ai-analysis",
        "//queue stats",
        long.as_str(),
        many_words.as_str(),
    ];
    for input in odd {
        let _ = parse(&catalog, &scope, input);
        let _ = help_text(&catalog, &scope, Some(input));
    }
    assert!(parse(&catalog, &scope, "/--sys").is_err());
    let err = parse(&catalog, &scope, &long).expect_err("too long for note");
    assert!(
        err.message.len() < 500,
        "error echoes are truncated: {}",
        err.message.len()
    );
}

#[test]
fn display_round_trips_and_hash_binds_args() {
    let catalog = test_catalog();
    let enabled = profiles(&["chat", "queue"]);
    let scope = Scope {
        enabled_profiles: &enabled,
        channel_profile: Some("queue"),
    };
    let run = |text: &str| match parse(&catalog, &scope, text) {
        Ok(Parsed::Run(r)) => r,
        other => panic!("{text}: {other:?}"),
    };
    for text in [
        "/queue clean ai-analysis --grace 24h",
        "/queue job j1 \"two words\"",
        "/queue job j1 'a\"b \\ --x'",
        "/queue job j1 \"\"",
        "/queue jobs --state active,waiting --ids 3,2",
        "/chat ticket T-1",
        "/ops health",
    ] {
        let r = run(text);
        let again = run(&r.display());
        assert_eq!(r.args, again.args, "{text} → {}", r.display());
        assert_eq!(r.hash(), again.hash());
    }
    let a = run("/queue clean ai-analysis");
    assert_eq!(a.display(), "/queue clean ai-analysis --grace 1d");
    assert_eq!(a.hash(), run("/queue clean ai-analysis --grace 24h").hash());
    assert_ne!(a.hash(), run("/queue clean ai-analysis --grace 23h").hash());
    assert_ne!(a.hash(), run("/queue clean notifications").hash());
    assert_eq!(a.hash().len(), 64);
    let chat = Scope {
        enabled_profiles: &enabled,
        channel_profile: Some("chat"),
    };
    let other_profile = match parse(&catalog, &chat, "/ops health") {
        Ok(Parsed::Run(r)) => r.hash(),
        other => panic!("{other:?}"),
    };
    assert_ne!(run("/ops health").hash(), other_profile);

    // Stored args are revalidated against the current specs at execution.
    let r = run("/queue clean ai-analysis --grace 24h");
    assert_eq!(revalidate(r.command, &r.args), Ok(()));
    let with = |k: &str, v: &str| {
        let mut args = r.args.clone();
        args.insert(k.into(), v.into());
        args
    };
    let refused = |args: &BTreeMap<String, String>| revalidate(r.command, args).unwrap_err();
    assert!(refused(&with("queue", "everything")).contains("not a valid queue"));
    assert!(refused(&with("grace", "24 hours")).contains("grace"));
    assert!(
        refused(&with("grace", "24h")).contains("normal form"),
        "stored values are normalized"
    );
    assert!(refused(&with("force", "true")).contains("no longer an argument"));
    let mut missing = r.args.clone();
    missing.remove("queue");
    assert_eq!(refused(&missing), "<queue> is missing");
    // The request hash covers the definition: a changed path is a new request.
    let mut changed = r.command.clone();
    if let crate::catalog::Action::Http(h) = &mut changed.action {
        h.path = "/elsewhere".into();
    }
    assert_ne!(request_hash(&changed, &r.args), r.hash());
    assert_eq!(request_hash(r.command, &r.args), r.hash());
}

#[test]
fn help_text_matches_parse_help() {
    let catalog = test_catalog();
    let enabled = profiles(&["chat", "queue"]);
    let scope = Scope {
        enabled_profiles: &enabled,
        channel_profile: None,
    };
    for (topic, text) in [
        (None, "/help"),
        (Some("queue clean"), "/queue clean help"),
        (Some("/queue"), "help queue"),
    ] {
        match parse(&catalog, &scope, text) {
            Ok(Parsed::Help(h)) => assert_eq!(h, help_text(&catalog, &scope, topic)),
            other => panic!("{text}: {other:?}"),
        }
    }
    assert!(help_text(&catalog, &scope, Some("nope")).contains("Unknown command `/nope`"));
}

/// Snapshots built-in cases against the test catalog, chat and queue
/// enabled, in an unbound channel.
fn run_builtin_table(prefix: &str, cases: &[(&str, &str)]) {
    let catalog = test_catalog();
    let enabled = profiles(&["chat", "queue"]);
    let scope = Scope {
        enabled_profiles: &enabled,
        channel_profile: None,
    };
    run_table(&catalog, &scope, prefix, cases);
}

#[test]
fn table_incident_builtins() {
    let cases = [
        ("declare", "/incident declare P1 checkout is \"down\" --sys cap"),
        ("declare_no_title", "/incident declare P1"),
        ("declare_bad_flag", "/incident declare P1 x --force"),
        ("ack_in_thread", "/incident ack"),
        ("ack_id", "/incident ack #12"),
        ("ack_extra", "/incident ack #12 now"),
        ("update", "/incident update #3 failover done, watching"),
        ("update_empty", "/incident update"),
        ("severity", "/incident severity P0"),
        ("role", "/incident role #4 comms @carol"),
        ("role_bad", "/incident role boss carol"),
        (
            "report",
            "/incident report --impact '50% of checkouts' --actions 'rolled back' --next 30m",
        ),
        ("report_missing", "/incident report --impact x"),
        (
            "report_bad_next",
            "/incident report --impact x --actions y --next soon",
        ),
        ("resolve_summary", "/incident resolve #9 bad deploy reverted"),
        ("verb_typo", "/incident updte #3 x"),
        ("oncall_bad_flag", "/oncall --team sre"),
        ("verb_missing", "/incident"),
        ("incidents", "/incidents"),
        ("incidents_extra", "/incidents all"),
        ("oncall", "/oncall"),
        ("oncall_rotation", "/oncall secondary"),
        ("oncall_override", "/oncall override bob 4h --rotation secondary"),
        ("oncall_override_bad", "/oncall override bob"),
        ("builtin_typo", "/incidnet ack"),
    ];
    run_builtin_table("incident", &cases);
}

#[test]
fn table_alerts_builtins() {
    let cases = [
        ("firing", "/alerts"),
        ("silences", "/alerts silences"),
        ("silences_extra", "/alerts silences all"),
        (
            "silence",
            "/alerts silence alertname=HighErrorRate,severity=~crit.* 2h deploy of v2",
        ),
        (
            "silence_spaces",
            "/alerts silence alertname=HighErrorRate 'job!=\"db, primary\"' 30m",
        ),
        (
            "silence_space_unquoted",
            "/alerts silence job!=\"db primary\" 30m",
        ),
        ("silence_any_word", "/alerts silence alertname=~.+ 1h"),
        ("silence_no_matchers", "/alerts silence 2h"),
        ("silence_no_duration", "/alerts silence alertname=HighErrorRate"),
        (
            "silence_bad_duration",
            "/alerts silence alertname=HighErrorRate soon",
        ),
        ("silence_too_long", "/alerts silence alertname=HighErrorRate 8d"),
        ("silence_match_all", "/alerts silence alertname=~.* 1h"),
        ("silence_only_negative", "/alerts silence severity!=info 1h"),
        ("silence_colon", "/alerts silence alertname:HighErrorRate 1h"),
        ("silence_glob", "/alerts silence severity=~crit* 1h"),
        ("silence_flag", "/alerts silence alertname=X 1h --force"),
        ("maintenance", "/alerts maintenance chat 2h kernel updates"),
        ("maintenance_typo", "/alerts maintenance caht 2h"),
        ("maintenance_missing", "/alerts maintenance chat"),
        ("unsilence", "/alerts unsilence s12"),
        ("unsilence_bad", "/alerts unsilence twelve"),
        ("unsilence_missing", "/alerts unsilence"),
        ("verb_typo", "/alerts silense alertname=X 1h"),
        ("help", "/alerts help"),
    ];
    run_builtin_table("alerts", &cases);
}
