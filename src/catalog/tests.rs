//! Loader tests: every kind of catalog problem is reported with its line.

use super::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn roles() -> BTreeSet<String> {
    ["anyone", "oncall", "sre"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn load(text: &str) -> Result<Catalog, CheckError> {
    load_str(
        "c.toml",
        text,
        &Context {
            roles: &roles(),
            env: &HashMap::new(),
        },
    )
}

fn problems(text: &str) -> Vec<String> {
    load(text)
        .unwrap_err()
        .problems
        .iter()
        .map(|p| p.to_string())
        .collect()
}

/// Every one of `expected` starts one of the problems `p`.
fn assert_each_reported(p: &[String], expected: &[&str]) {
    for e in expected {
        assert!(p.iter().any(|x| x.starts_with(e)), "missing {e:?} in {p:#?}");
    }
}

const TARGET: &str = "[target.api]\nkind = \"http\"\nurl = \"http://x\"\n";

#[test]
fn loads_a_command_with_typed_args_in_order() {
    let c = load(&format!(
        "{TARGET}\n[command.queue.\"queue clean\"]\nsummary = \"s\"\nargs = {{ queue = {{ kind = \"enum\", values = [\"a\"] }}, grace = {{ kind = \"duration\", flag = true, default = \"24h\" }} }}\nrisk = \"destructive\"\nroles = [\"oncall\"]\napprove = {{ roles = [\"sre\"] }}\naction = {{ http = {{ method = \"POST\", target = \"api\", path = \"/q/{{queue}}\" }} }}\n"
    ))
    .unwrap();
    let cmd = c.get("queue", "queue clean").unwrap();
    assert_eq!(
        cmd.args.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["queue", "grace"]
    );
    assert_eq!(cmd.usage(), "/queue clean <queue:a> [--grace <duration>]");
    let a = cmd.approve.as_ref().unwrap();
    assert_eq!((a.count, a.ttl.as_secs()), (1, 900));
    assert_eq!(cmd.location.line, 5);
}

#[test]
fn syntax_errors_have_a_line() {
    let p = problems("[target.api]\nkind = \"http\"\nurl = \n");
    assert!(p[0].starts_with("c.toml:3: "), "{p:?}");
}

#[test]
fn duplicate_commands_and_targets_are_reported() {
    let cmd = "[command.q.\"queue stats\"]\nsummary = \"s\"\nrisk = \"read\"\nroles = [\"anyone\"]\naction = { http = { target = \"api\", path = \"/\" } }\n";
    let err = load_sources(
        &[
            ("a.toml", &format!("{TARGET}{cmd}")),
            ("b.toml", &format!("{TARGET}{cmd}")),
        ],
        &Context {
            roles: &roles(),
            env: &HashMap::new(),
        },
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("b.toml:1: target `api` is defined twice (also at a.toml:1)"),
        "{text}"
    );
    assert!(
        text.contains("b.toml:4: command `queue stats` of profile `q` is defined twice (also at a.toml:4)"),
        "{text}"
    );
}

#[test]
fn bad_args_roles_targets_and_templates() {
    let p = problems(&format!(
        "{TARGET}[target.cache]\nkind = \"redis\"\nurl = \"redis://x\"\n\n[command.q.\"x y\"]\nsummary = \"s\"\nargs = {{ a = {{ kind = \"int\", min = 5, max = 1 }}, b = {{ kind = \"enum\" }}, c = {{ kind = \"string\", regex = \"(\" }}, d = {{ kind = \"bool\" }} }}\nrisk = \"write\"\nroles = [\"root\"]\naction = {{ http = {{ target = \"cache\", path = \"/{{zzz}}\" }} }}\nreply = \"{{nope}}\"\n"
    ));
    let expect = [
        "c.toml:10: argument `a`: min 5 is greater than max 1",
        "c.toml:10: argument `b`: kind \"enum\" needs values",
        "c.toml:10: argument `c`: regex does not compile",
        "c.toml:10: argument `d`: kind \"bool\" must be a flag",
        "c.toml:12: unknown role `root` in roles",
        "c.toml:13: target `cache` is redis, but a http action needs http",
        "c.toml:13: template `/{zzz}` uses `{zzz}`, which is not a defined argument",
        "c.toml:8: reply uses `{nope}`",
    ];
    assert_each_reported(&p, &expect);
}

#[test]
fn action_specific_checks() {
    let p = problems(
        "[target.r]\nkind = \"redis\"\nurl = \"redis://x\"\n[target.db]\nkind = \"sql\"\nurl = \"postgres://x\"\n\
         [command.q.\"a\"]\nsummary = \"s\"\nrisk = \"read\"\nroles = [\"anyone\"]\naction = { redis = { target = \"r\", command = [\"KEYS\", \"*\"] } }\n\
         [command.q.\"b\"]\nsummary = \"s\"\nrisk = \"read\"\nroles = [\"anyone\"]\naction = { sql = { target = \"db\", query = \"SELECT $2\", params = [] } }\n\
         [command.q.\"c\"]\nsummary = \"s\"\nargs = { p = { kind = \"id\" } }\nrisk = \"read\"\nroles = [\"anyone\"]\naction = { process = { argv = [\"{p}\"] } }\n",
    );
    let all = p.join("\n");
    assert!(all.contains("redis KEYS blocks the server"), "{all}");
    assert!(
        all.contains("sql query uses 2 parameter(s) but params has 0"),
        "{all}"
    );
    assert!(all.contains("the program (argv[0]) must be fixed"), "{all}");
}

#[test]
fn target_urls_are_overridden_from_the_environment() {
    let env: HashMap<String, String> =
        [("OPSBOT_TARGET_QUEUE_API".into(), "http://10.1.1.1:3001".into())].into();
    let c = load_str(
        "c.toml",
        "[target.queue_api]\nkind = \"http\"\nurl = \"http://localhost:3001\"\n",
        &Context {
            roles: &roles(),
            env: &env,
        },
    )
    .unwrap();
    assert_eq!(c.targets["queue_api"].url, "http://10.1.1.1:3001");
}

#[test]
fn the_shipped_catalog_is_valid() {
    let all: BTreeSet<String> = crate::auth::Roles::new(&Default::default()).names();
    let c = load_dir(
        std::path::Path::new("commands"),
        &Context {
            roles: &all,
            env: &HashMap::new(),
        },
    )
    .unwrap();
    for name in [
        "queue stats",
        "queue pause",
        "queue resume",
        "queue clean",
        "queue retry",
        "cache info",
        "ops health",
    ] {
        assert!(c.named(name).next().is_some(), "{name} missing");
    }
}

/// A catalog with one redis command `argv` of `risk`, approved by sre when `approve`.
fn redis_command(argv: &str, risk: &str, approve: bool) -> Result<Catalog, CheckError> {
    let approve = if approve {
        "approve = { roles = [\"sre\"] }\n"
    } else {
        ""
    };
    load(&format!(
        "[target.r]\nkind = \"redis\"\nurl = \"redis://x\"\n\n[command.q.\"c\"]\nsummary = \"s\"\nargs = {{ x = {{ kind = \"enum\", values = [\"GET\", \"FLUSHALL\"] }} }}\nrisk = \"{risk}\"\nroles = [\"oncall\"]\n{approve}action = {{ redis = {{ target = \"r\", command = {argv} }} }}\n"
    ))
}

#[test]
fn redis_command_names_are_literal() {
    let p = redis_command(r#"["{x}", "k"]"#, "destructive", true)
        .unwrap_err()
        .to_string();
    assert_eq!(
        p,
        "c.toml:11: the redis command name `{x}` must be a literal, not a template (chat values may only be arguments)"
    );
    assert!(redis_command(r#"["GET", "{x}"]"#, "read", false).is_ok());
}

#[test]
fn dangerous_redis_commands_need_destructive_and_approval() {
    for name in [
        "FLUSHALL", "flushdb", "CONFIG", "EVAL", "DEBUG", "SHUTDOWN", "SELECT",
    ] {
        let argv = format!(r#"["{name}", "0"]"#);
        for (risk, approve) in [("read", false), ("write", true), ("destructive", false)] {
            let err = redis_command(&argv, risk, approve).unwrap_err().to_string();
            let upper = name.to_ascii_uppercase();
            assert!(
                err.starts_with(&format!(
                    "c.toml:{}: redis {upper} is refused here: ",
                    10 + approve as u8
                )),
                "{name} {risk} {approve}: {err}"
            );
            assert!(
                err.ends_with("only a command with risk = \"destructive\" and an approve policy may send it"),
                "{err}"
            );
        }
        assert!(redis_command(&argv, "destructive", true).is_ok(), "{name}");
    }
    assert!(redis_command(r#"["EVAL_RO", "return 1", "0"]"#, "read", false).is_ok());
}

/// A catalog with one `seq` command of `risk` whose action is `steps`
/// (written one step per line, from line 14).
fn seq_command(steps: &str, risk: &str) -> Result<Catalog, CheckError> {
    load(&format!(
        "{TARGET}[target.r]\nkind = \"redis\"\nurl = \"redis://x\"\n\n[command.q.\"deploy verify\"]\nsummary = \"s\"\nargs = {{ q = {{ kind = \"id\" }} }}\nrisk = \"{risk}\"\nroles = [\"oncall\"]\naction = {{ seq = [\n{steps}] }}\n"
    ))
}

#[test]
fn a_seq_loads_its_steps_in_order() {
    let c = seq_command(
        "  { http = { target = \"api\", path = \"/a/{q}\" } },\n  { redis = { target = \"r\", command = [\"PING\"] } },\n",
        "read",
    )
    .unwrap();
    let cmd = c.get("q", "deploy verify").unwrap();
    let Action::Seq(seq) = &cmd.action else {
        panic!("{:?}", cmd.action)
    };
    let kinds: Vec<&str> = seq.steps.iter().map(|s| s.action.kind()).collect();
    assert_eq!(kinds, ["http", "redis"]);
    assert_eq!(cmd.action.kind(), "seq");
    assert_eq!(cmd.action.depth(), 1);
    assert_eq!(cmd.action.targets().len(), 2);
    assert!(
        unused_targets(&c).is_empty(),
        "every step's target counts as used"
    );
}

#[test]
fn seq_problems_name_the_step_and_its_line() {
    let p = problems_of(seq_command(
        "  { http = { target = \"api\", path = \"/a\" } },\n  { http = { target = \"nope\", path = \"/{zzz}\" } },\n  { redis = { target = \"api\", command = [\"FLUSHALL\"] } },\n",
        "write",
    ));
    let expect = [
        "c.toml:15: step 2 of 3: unknown target `nope`",
        "c.toml:15: step 2 of 3: template `/{zzz}` uses `{zzz}`, which is not a defined argument",
        "c.toml:16: step 3 of 3: target `api` is http, but a redis action needs redis",
        "c.toml:16: step 3 of 3: redis FLUSHALL is refused here",
    ];
    assert_each_reported(&p, &expect);
    assert_eq!(p.len(), expect.len(), "{p:#?}");
}

#[test]
fn empty_long_and_deep_seqs_are_refused() {
    let p = problems_of(seq_command("", "read"));
    assert_eq!(p, ["c.toml:13: seq has no steps: list at least one action"]);
    let step = "  { http = { target = \"api\", path = \"/a\" } },\n";
    let p = problems_of(seq_command(&step.repeat(21), "read"));
    assert_eq!(p, ["c.toml:13: seq has 21 steps (at most 20)"]);
    assert!(seq_command(&step.repeat(20), "read").is_ok());
    let two = format!("  {{ seq = [\n  {step}  ] }},\n");
    assert!(seq_command(&two, "read").is_ok(), "a seq of seqs is fine");
    let three = "  { seq = [ { seq = [ { http = { target = \"api\", path = \"/a\" } } ] } ] },\n";
    let p = problems_of(seq_command(three, "read"));
    assert_eq!(
        p,
        ["c.toml:13: seq nested 3 deep (at most 2: a seq may hold seqs of plain actions)"]
    );
    let empty_inner = "  { http = { target = \"api\", path = \"/a\" } },\n  { seq = [] },\n";
    let p = problems_of(seq_command(empty_inner, "read"));
    assert_eq!(
        p,
        ["c.toml:15: step 2 of 2: seq has no steps: list at least one action"]
    );
}

#[test]
fn guarded_redis_steps_need_a_destructive_approved_command() {
    let text = |approve: &str| {
        format!(
            "[target.r]\nkind = \"redis\"\nurl = \"redis://x\"\n\n[command.q.\"c\"]\nsummary = \"s\"\nrisk = \"destructive\"\nroles = [\"oncall\"]\n{approve}action = {{ seq = [{{ redis = {{ target = \"r\", command = [\"DBSIZE\"] }} }}, {{ redis = {{ target = \"r\", command = [\"FLUSHDB\", \"ASYNC\"] }} }}] }}\n"
        )
    };
    let p = problems(&text(""));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("c.toml:9: step 2 of 2: redis FLUSHDB is refused here"),
        "{p:#?}"
    );
    assert!(load(&text("approve = { roles = [\"sre\"] }\n")).is_ok());
}

fn problems_of(r: Result<Catalog, CheckError>) -> Vec<String> {
    r.unwrap_err().problems.iter().map(|p| p.to_string()).collect()
}

#[test]
fn internal_links_need_an_http_target_and_defined_args() {
    let text = |target: &str, path: &str| {
        format!(
            "{TARGET}[target.r]\nkind = \"redis\"\nurl = \"redis://x\"\n\n[command.q.\"queue board\"]\nsummary = \"s\"\nrisk = \"read\"\nroles = [\"anyone\"]\naction = {{ internal = {{ link = {{ target = \"{target}\", path = \"{path}\" }} }} }}\n"
        )
    };
    let c = load(&text("api", "/admin/queues")).unwrap();
    assert_eq!(c.get("q", "queue board").unwrap().action.kind(), "internal");
    assert!(unused_targets(&c) == ["r"], "{:?}", unused_targets(&c));
    let p = problems(&text("r", "/{nope}"));
    assert_eq!(
        p,
        [
            "c.toml:12: target `r` is redis, but a internal action needs http",
            "c.toml:12: template `/{nope}` uses `{nope}`, which is not a defined argument",
        ]
    );
}

#[test]
fn maintenance_steps_check_their_templates_and_stand_outside_summaries() {
    let text = |action: &str| {
        format!(
            "{TARGET}\n[command.p.\"ops maintenance on\"]\nsummary = \"s\"\nargs = {{ for = {{ kind = \"duration\", flag = true, default = \"2h\" }} }}\nrisk = \"write\"\nroles = [\"oncall\"]\naction = {action}\n"
        )
    };
    let c = load(&text(
        "{ internal = { maintenance = { open = { lasts = \"{for}\" } } } }",
    ))
    .unwrap();
    let cmd = c.get("p", "ops maintenance on").unwrap();
    assert!(matches!(
        cmd.action.maintenance_steps()[..],
        [MaintenanceStep::Open { .. }]
    ));
    let close = load(&text("{ seq = [{ internal = { maintenance = \"close\" } }] }")).unwrap();
    assert!(matches!(
        close
            .get("p", "ops maintenance on")
            .unwrap()
            .action
            .maintenance_steps()[..],
        [MaintenanceStep::Close]
    ));
    let p = problems(&text(
        "{ internal = { maintenance = { open = { lasts = \"{len}\" } } } }",
    ));
    assert_eq!(
        p,
        ["c.toml:10: template `{len}` uses `{len}`, which is not a defined argument"]
    );
    let p = problems(&text(
        "{ summarize = { of = { internal = { maintenance = \"require\" } }, lines = {} } }",
    ));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].contains("summarize: a maintenance step stands alone"),
        "{p:#?}"
    );
}

const REDIS_SQL: &str = "[target.r]\nkind = \"redis\"\nurl = \"redis://x\"\nkey_prefixes = [\"gemini:\"]\n[target.d]\nkind = \"sql\"\nurl = \"postgres://x/d\"\n";

/// A destructive, approved command `x` of profile `p` with `body` (its
/// args, action and preview lines).
fn guarded(body: &str) -> String {
    format!("{REDIS_SQL}\n[command.p.\"x\"]\nsummary = \"s\"\nrisk = \"destructive\"\nroles = [\"oncall\"]\napprove = {{ roles = [\"sre\"] }}\n{body}")
}

#[test]
fn a_preview_loads_and_binds_its_items_to_the_action() {
    let c = load(&guarded(
        "args = { older = { kind = \"duration\", flag = true, default = \"5m\" } }\n\
         preview = { what = \"queries\", items = \"pid\", action = { sql = { target = \"d\", query = \"SELECT pid FROM a WHERE age > $1\", params = [\"{older}\"] } } }\n\
         action = { sql = { target = \"d\", query = \"SELECT f(pid) FROM a WHERE age > $1 AND pid = ANY($2::int[])\", params = [\"{older}\", \"{preview.items}\"] } }\n",
    ))
    .unwrap();
    let cmd = c.get("p", "x").unwrap();
    assert_eq!(cmd.preview.as_ref().unwrap().items.as_deref(), Some("pid"));
    assert_eq!(cmd.preview.as_ref().unwrap().samples, 5);
}

#[test]
fn previews_must_read_sit_on_an_approval_card_and_bind_what_the_action_uses() {
    let writes = problems(&guarded(
        "preview = { what = \"rows\", action = { sql = { target = \"d\", query = \"DELETE FROM a\" } } }\n\
         action = { sql = { target = \"d\", query = \"SELECT 1\" } }\n",
    ));
    assert_each_reported(
        &writes,
        &["c.toml:14: preview: must be read-only: an sql preview is a SELECT"],
    );
    let redis_write = problems(&guarded(
        "preview = { what = \"keys\", action = { redis = { target = \"r\", command = [\"FLUSHALL\"] } } }\n\
         action = { redis = { target = \"r\", command = [\"DBSIZE\"] } }\n",
    ));
    assert_each_reported(
        &redis_write,
        &["c.toml:14: preview: must be read-only: redis FLUSHALL"],
    );
    let no_approval = problems(&format!(
        "{REDIS_SQL}\n[command.p.\"x\"]\nsummary = \"s\"\nrisk = \"read\"\nroles = [\"oncall\"]\n\
         preview = {{ what = \"keys\", action = {{ redis = {{ target = \"r\", command = [\"DBSIZE\"] }} }} }}\n\
         action = {{ redis = {{ target = \"r\", command = [\"DBSIZE\"] }} }}\n"
    ));
    assert_each_reported(
        &no_approval,
        &["c.toml:13: preview: a preview is shown on the approval card"],
    );
    let unbound = problems(&guarded(
        "action = { sql = { target = \"d\", query = \"SELECT 1 WHERE $1 IS NULL\", params = [\"{preview.items}\"] } }\n",
    ));
    assert_each_reported(
        &unbound,
        &["c.toml:14: template `{preview.items}` uses `{preview.items}`"],
    );
    let bare_delete = problems(&guarded(
        "args = { pattern = { kind = \"string\" } }\n\
         action = { redis = { target = \"r\", delete_matching = \"{pattern}\" } }\n",
    ));
    assert_each_reported(
        &bare_delete,
        &["c.toml:15: delete_matching needs a preview that scans the same pattern"],
    );
    let items_in_redis = problems(&guarded(
        "args = { pattern = { kind = \"string\" } }\n\
         preview = { what = \"keys\", action = { redis = { target = \"r\", scan = \"{pattern}\" } } }\n\
         action = { redis = { target = \"r\", command = [\"UNLINK\", \"{preview.items}\"] } }\n",
    ));
    assert_each_reported(
        &items_in_redis,
        &["c.toml:16: `{preview.items}` may only be an sql parameter"],
    );
}

/// A command whose `variants` (keyed by `key`, values `a`/`b` choices) are
/// the whole action: `choice_a` and `choice_b` go inside each choice.
fn variant_command(args: &str, key: &str, choice_a: &str, choice_b: &str) -> String {
    format!(
        "{TARGET}\n[command.cap.\"rollback\"]\nsummary = \"s\"\nargs = {{ {args} }}\nrisk = \"destructive\"\nroles = [\"oncall\"]\naction = {{ variants = {{ by = \"{key}\", choices = [\n  {{ value = \"true\", {choice_a}action = {{ http = {{ method = \"POST\", target = \"api\", path = \"/r\" }} }} }},\n  {{ value = \"false\", {choice_b}action = {{ http = {{ method = \"POST\", target = \"api\", path = \"/p\" }} }} }},\n] }} }}\n"
    )
}

const SWITCHES: &str =
    "emergency = { kind = \"bool\", flag = true }, disable = { kind = \"list\", of = \"id\", flag = true }";

#[test]
fn a_switch_picks_a_variant_with_its_own_approval() {
    let text = variant_command(
        SWITCHES,
        "emergency",
        "args = [\"disable\"], approve = { roles = [\"sre\"], break_glass = true }, ",
        "approve = { roles = [\"oncall\"], ttl = \"5m\" }, ",
    );
    let c = load(&text).unwrap();
    let cmd = c.get("cap", "rollback").unwrap();
    let on = BTreeMap::from([("emergency".to_string(), "true".to_string())]);
    let emergency = cmd.approval(&on).unwrap();
    assert_eq!(
        (emergency.roles.clone(), emergency.break_glass),
        (vec!["sre".to_string()], true)
    );
    // Left off, the switch is `false`: the planned form's own policy.
    let planned = cmd.approval(&BTreeMap::new()).unwrap();
    assert_eq!(
        (planned.roles.clone(), planned.ttl.as_secs(), planned.break_glass),
        (vec!["oncall".to_string()], 300, false)
    );
    assert!(cmd.approve.is_none() && cmd.may_need_approval());
    let labels: Vec<String> = cmd
        .variants()
        .unwrap()
        .choices
        .iter()
        .map(|ch| cmd.choice_label(ch))
        .collect();
    assert_eq!(labels, ["--emergency", "without --emergency"]);
    // Each form's approvers are part of the definition an approval binds to.
    let other = text.replace("roles = [\"oncall\"], ttl", "roles = [\"sre\"], ttl");
    let changed = load(&other).unwrap();
    assert_ne!(
        cmd.definition_hash(),
        changed.get("cap", "rollback").unwrap().definition_hash()
    );
}

/// [`guarded`] with a profile `p` holding the config value `logs.dir`.
fn guarded_process(body: &str) -> String {
    format!("[profile.p]\nvalues.logs.dir = \"/l\"\n\n{}", guarded(body))
}

#[test]
fn a_process_preview_reads_and_its_items_are_whole_argv_elements_or_env_values() {
    let c = load(&guarded_process(
        "preview = { what = \"files\", items = \"line\", action = { process = { argv = [\"find\", \"{logs.dir}\", \"-print\"] } } }\n\
         action = { process = { argv = [\"find\", \"{preview.items}\", \"-delete\"], env = { ITEMS = \"{preview.items}\" } } }\n",
    ))
    .unwrap();
    let p = c.get("p", "x").unwrap().preview.as_ref().unwrap();
    let Action::Process(proc) = &p.action else {
        panic!("a process preview")
    };
    assert_eq!(
        proc.place.values["logs.dir"], "/l",
        "the preview runs where the action does"
    );
    let body = |preview: &str, action: &str| {
        problems(&guarded_process(&format!(
            "preview = {preview}\naction = {{ process = {{ argv = {action} }} }}\n"
        )))
    };
    let find = |extra: &str| {
        format!("{{ what = \"files\", items = \"line\", action = {{ process = {{ argv = [\"find\", \"{{logs.dir}}\"{extra}] }} }} }}")
    };
    let fine = "[\"rm\", \"{preview.items}\"]";
    assert_each_reported(
        &body(&find(", \"-delete\""), fine),
        &["c.toml:17: preview: must be read-only: find -delete"],
    );
    assert_each_reported(
        &body(&find(", \"-exec\", \"rm\", \";\""), fine),
        &["c.toml:17: preview: must be read-only: find -exec"],
    );
    assert_each_reported(
        &body(
            "{ what = \"files\", items = \"line\", action = { process = { argv = [\"rm\", \"-v\", \"{logs.dir}\"] } } }",
            fine,
        ),
        &["c.toml:17: preview: must be read-only: `rm` is not one of the programs"],
    );
    assert_each_reported(
        &body(
            "{ what = \"ops\", items = \"opid\", columns = [\"opid\"], action = { process = { argv = [\"mongosh\", \"--nodb\", \"--quiet\", \"--eval\", \"db.c.deleteMany({})\"] } } }",
            fine,
        ),
        &["c.toml:17: preview: must be read-only: the mongosh script calls deleteMany()"],
    );
    assert_each_reported(
        &body(&find("").replace("\"line\"", "\"path\""), fine),
        &["c.toml:17: preview: `path` is not a column of the preview's lines (columns: line)"],
    );
    assert_each_reported(
        &body(&find(""), "[\"rm\", \"--file={preview.items}\"]"),
        &["c.toml:18: argv element `--file={preview.items}`: `{preview.items}` must be a whole element"],
    );
    assert_each_reported(
        &body(&find(""), "[\"{preview.items}\"]"),
        &["c.toml:18: `{preview.items}` cannot be the program"],
    );
    assert_each_reported(
        &body(&find("").replace("items = \"line\", ", ""), fine),
        &["c.toml:18: `{preview.items}` needs a preview with items"],
    );
    let cwd = problems(&guarded_process(&format!(
        "preview = {}\naction = {{ process = {{ argv = [\"rm\", \"x\"], cwd = \"{{preview.items}}\" }} }}\n",
        find("")
    )));
    assert_each_reported(&cwd, &["c.toml:18: cwd may not name `{preview.items}`"]);
    let columns_on_sql = problems(&guarded(
        "preview = { what = \"rows\", columns = [\"a\"], action = { sql = { target = \"d\", query = \"SELECT 1\" } } }\n\
         action = { sql = { target = \"d\", query = \"SELECT 1\" } }\n",
    ));
    assert_each_reported(
        &columns_on_sql,
        &["c.toml:14: preview: columns name the fields of a process preview's lines"],
    );
}

#[test]
fn variant_approvals_and_args_are_checked() {
    let p = problems(&variant_command(
        "emergency = { kind = \"bool\", flag = true }, days = { kind = \"int\", flag = true, default = 3 }",
        "emergency",
        "args = [\"days\", \"nope\", \"emergency\"], approve = { roles = [\"cto\"], count = 0 }, ",
        "",
    ));
    assert_each_reported(
        &p,
        &[
            "c.toml:11: unknown role `cto` in approve.roles",
            "c.toml:11: approve.count must be at least 1",
            "c.toml:11: emergency = true: args: `days` always has a value",
            "c.toml:11: emergency = true: args: `nope` is not a defined argument",
            "c.toml:11: emergency = true: args: `emergency` picks the variant itself",
        ],
    );
    // Only the command's own variants: inside a seq, one step cannot pick approvers.
    let nested = format!(
        "{TARGET}\n[command.cap.\"x\"]\nsummary = \"s\"\nargs = {{ k = {{ kind = \"enum\", values = [\"a\"] }} }}\nrisk = \"write\"\nroles = [\"oncall\"]\naction = {{ seq = [{{ variants = {{ by = \"k\", choices = [\n  {{ value = \"a\", approve = {{ roles = [\"sre\"] }}, action = {{ http = {{ target = \"api\", path = \"/a\" }} }} }},\n] }} }}] }}\n"
    );
    assert_each_reported(
        &problems(&nested),
        &["c.toml:11: variant `a`: approve and args of a variant apply only where the variants are the command's action"],
    );
    // An int cannot key variants; a switch can.
    let p = problems(&variant_command(
        "emergency = { kind = \"int\", flag = true }",
        "emergency",
        "",
        "",
    ));
    assert_each_reported(
        &p,
        &["c.toml:10: variants are keyed by `emergency`, a int argument: only an enum or a switch"],
    );
}

#[test]
fn each_runs_over_a_previews_items_and_only_it_names_one_item() {
    let http = format!("{TARGET}\n{}", guarded(""));
    let with = |body: &str| http.replacen("[command.p.\"x\"]", &format!("[command.p.\"x\"]\n{body}"), 1);
    let preview = "preview = { what = \"jobs\", items = \"jobs\", only = { state = [\"running\"] }, action = { http = { target = \"api\", path = \"/jobs\" } } }";
    let each = "action = { each = { http = { method = \"PUT\", target = \"api\", path = \"/jobs/{preview.item}/stop\" } } }";
    let c = load(&with(&format!("{preview}\n{each}"))).unwrap();
    assert_eq!(c.get("p", "x").unwrap().action.kind(), "each");
    assert_each_reported(
        &problems(&with(each)),
        &["c.toml:14: each runs once per previewed item: the command needs a preview with items"],
    );
    let outside =
        "action = { http = { method = \"PUT\", target = \"api\", path = \"/jobs/{preview.item}/stop\" } }";
    assert_each_reported(
        &problems(&with(&format!("{preview}\n{outside}"))),
        &["c.toml:15: `{preview.item}` is one previewed item: it may appear only inside an each action"],
    );
    let nested = "action = { each = { each = { http = { target = \"api\", path = \"/{preview.item}\" } } } }";
    assert_each_reported(
        &problems(&with(&format!("{preview}\n{nested}"))),
        &["c.toml:15: each: each inside each"],
    );
    let only_on_sql = problems(&guarded(
        "preview = { what = \"rows\", items = \"id\", only = { s = [\"a\"] }, action = { sql = { target = \"d\", query = \"SELECT 1 AS id\" } } }\n\
         action = { sql = { target = \"d\", query = \"SELECT 1\" } }\n",
    ));
    assert_each_reported(
        &only_on_sql,
        &["c.toml:14: preview: only filters the items array of an http preview"],
    );
}

/// A command over the `api` target with `args`, `risk`, `extra` lines.
fn scheduled_command(args: &str, risk: &str, extra: &str) -> String {
    format!(
        "{TARGET}\n[command.q.\"w\"]\nsummary = \"s\"\nargs = {{ {args} }}\nrisk = \"{risk}\"\nroles = [\"oncall\"]\naction = {{ http = {{ target = \"api\", path = \"/x\" }} }}\n{extra}\n"
    )
}

const WATCH_ARGS: &str = "every = { kind = \"duration\", flag = true, default = \"1m\" }, for = { kind = \"duration\", flag = true, default = \"10m\" }";

#[test]
fn a_watch_loads_with_its_bounds() {
    let c = load(&scheduled_command(
        WATCH_ARGS,
        "read",
        "watch = { every = \"every\", for = \"for\", max_for = \"1h\" }",
    ))
    .unwrap();
    assert_eq!(
        c.get("q", "w").unwrap().schedule,
        Some(Schedule::Watch {
            every: "every".into(),
            lasts: "for".into(),
            min_every: std::time::Duration::from_secs(30),
            max_for: std::time::Duration::from_secs(3600),
            stop: None,
        })
    );
}

#[test]
fn watch_and_then_problems_are_reported_at_their_line() {
    let p = problems(&scheduled_command(
        "every = { kind = \"int\", flag = true, default = 5 }, for = { kind = \"duration\", flag = true, default = \"2h\" }",
        "write",
        "watch = { every = \"every\", for = \"for\", min_every = \"soon\" }",
    ));
    assert_each_reported(
        &p,
        &[
            "c.toml:11: watch: only a read command is run again on its own",
            "c.toml:11: watch.every: argument `every` must be a duration flag",
            "c.toml:11: watch.min_every: `soon` is not a duration",
        ],
    );
    let p = problems(&scheduled_command(
        &WATCH_ARGS.replace("10m", "2h"),
        "read",
        "watch = { every = \"every\", for = \"for\" }",
    ));
    assert_each_reported(
        &p,
        &["c.toml:11: watch: the defaults are refused: --for 2h is too long"],
    );
    let p = problems(&scheduled_command(
        "state = { kind = \"enum\", values = [\"on\", \"off\"] }, for = { kind = \"duration\", flag = true, default = \"5m\" }",
        "write",
        "approve = { roles = [\"sre\"] }\nthen = { after = \"for\", default = \"2d\", max = \"1d\", when = { state = \"up\" }, set = { mode = \"off\" } }",
    ));
    assert_each_reported(
        &p,
        &[
            "c.toml:12: then: a follow-up runs without an approval",
            "c.toml:12: then.after: argument `for` takes its default from then.default",
            "c.toml:12: then: default must lie between min and max",
            "c.toml:12: then.when: `up` is not a value of `state` (on, off)",
            "c.toml:12: then.set names `mode`, which is not an argument of the command",
        ],
    );
    let p = problems(&scheduled_command(
        WATCH_ARGS,
        "read",
        "watch = { every = \"every\", for = \"for\" }\nthen = { after = \"for\", default = \"1m\", max = \"1h\", set = { a = \"b\" } }",
    ));
    assert_each_reported(&p, &["c.toml:11: a command has `watch` or `then`, not both"]);
}

#[test]
fn a_then_follow_up_runs_with_its_set_arguments_after_its_delay() {
    let c = load(&scheduled_command(
        "state = { kind = \"enum\", values = [\"on\", \"off\"] }, for = { kind = \"duration\", flag = true }",
        "write",
        "then = { after = \"for\", default = \"30m\", max = \"1d\", when = { state = \"on\" }, set = { state = \"off\" } }",
    ))
    .unwrap();
    let s = c.get("q", "w").unwrap().schedule.clone().unwrap();
    let args = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let (delay, next) = s.follow_up(&args(&[("state", "on")])).unwrap();
    assert_eq!((delay.as_secs(), next), (1800, args(&[("state", "off")])));
    let (delay, _) = s.follow_up(&args(&[("state", "on"), ("for", "2h")])).unwrap();
    assert_eq!(delay.as_secs(), 7200);
    assert_eq!(s.follow_up(&args(&[("state", "off")])), None, "only `when`");
    assert_eq!(s.out_of_bounds(&args(&[("for", "1d")])), None);
    assert_eq!(
        s.out_of_bounds(&args(&[("for", "25h")])).as_deref(),
        Some("--for 1d1h is too long: at most 1d.")
    );
}

#[test]
fn a_command_with_maintenance_steps_is_not_scheduled() {
    let with = |maintenance: &str, extra: &str| {
        scheduled_command(
            "state = { kind = \"enum\", values = [\"on\", \"off\"] }, for = { kind = \"duration\", flag = true }",
            "write",
            extra,
        )
        .replace(
            "action = { http = { target = \"api\", path = \"/x\" } }",
            &format!("action = {{ seq = [{{ internal = {{ maintenance = {maintenance} }} }}, {{ http = {{ target = \"api\", path = \"/x\" }} }}] }}"),
        )
    };
    let then = "then = { after = \"for\", default = \"30m\", max = \"1d\", when = { state = \"on\" }, set = { state = \"off\" } }";
    assert!(load(&with("\"require\"", "")).is_ok(), "unscheduled, it loads");
    for maintenance in ["\"require\"", "\"close\""] {
        assert_each_reported(
            &problems(&with(maintenance, then)),
            &["c.toml:10: a command with maintenance steps (`internal.maintenance`) has no watch or then"],
        );
    }
}

#[test]
fn confirmation_steps_stand_only_in_the_command_s_own_seq_without_preview_or_schedule() {
    let text = |action: &str| {
        format!(
            "{TARGET}\n[command.chat.\"dr db-failover\"]\nsummary = \"s\"\nargs = {{ db = {{ kind = \"id\" }} }}\nrisk = \"write\"\nroles = [\"sre\"]\naction = {action}\n"
        )
    };
    let confirm = "{ internal = { confirm = { text = \"promote {db}\", within = \"1h\" } } }";
    let link = "{ internal = { link = { target = \"api\", path = \"/x\" } } }";
    let misplaced =
        "c.toml:10: a confirmation step (`internal.confirm`) may only be a step of the command's own seq";
    // Where it belongs: accepted.
    let c = load(&text(&format!("{{ seq = [{link}, {confirm}, {link}] }}"))).unwrap();
    assert!(c.get("chat", "dr db-failover").is_some());
    for elsewhere in [
        confirm.to_string(),
        format!("{{ seq = [{link}, {{ seq = [{confirm}] }}] }}"),
        format!("{{ seq = {{ steps = [{link}], finally = [{confirm}] }} }}"),
        format!("{{ summarize = {{ of = {confirm}, lines = {{}} }} }}"),
    ] {
        assert_each_reported(&problems(&text(&elsewhere)), &[misplaced]);
    }
    let with_finally = format!("{{ seq = {{ steps = [{confirm}], finally = [{link}] }} }}");
    assert_each_reported(
        &problems(&text(&with_finally)),
        &["c.toml:10: a seq with confirmation steps has no finally steps"],
    );
    let short = format!("{{ seq = [{}] }}", confirm.replace("1h", "30s"));
    assert_each_reported(
        &problems(&text(&short)),
        &["c.toml:10: confirmation step `promote {db}`: within is 30s, give 1m to 24h"],
    );
    let previewed = format!("{{ seq = [{confirm}] }}\npreview = {{ what = \"x\", action = {link} }}");
    assert_each_reported(
        &problems(&text(&previewed)),
        &["c.toml:10: a guided seq (with `internal.confirm` steps) has no preview, watch or then"],
    );
    let undefined = format!("{{ seq = [{}] }}", confirm.replace("{db}", "{nope}"));
    assert_each_reported(
        &problems(&text(&undefined)),
        &["c.toml:10: step 1 of 1: template `promote {nope}` uses `{nope}`, which is not a defined argument"],
    );
}
