//! Secrets reach a process through its environment only (runbooks.md §0,
//! issue #17): `{secret.NAME}` from the bot's environment, `{target.NAME}`
//! and its parts from a target's URL. The stand-ins record their argv and
//! their environment: the secret reaches the program, and is absent from the
//! argv (local and over ssh), the rendering, the reply and the audit log.
//! `{run.ts}` is one UTC timestamp per run, shared by every step of a seq.

use crate::support::{args, both, config, pipeline_env, say, StandIns};
use opsbot::catalog::{self, Catalog};
use opsbot::clock::ManualClock;
use opsbot::engine::Outcome;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The database password inside the target URL (percent-encoded there).
const DB_PASSWORD: &str = "S3cret/Pass-42";
/// The Mongo URL's password.
const MONGO_PASSWORD: &str = "M0ngoSecretPw";
/// A secret from the bot's environment.
const TOKEN_VAR: &str = "OPSBOT_TEST_PROCESS_ENV_TOKEN";
const TOKEN: &str = "tok-7f3a9c1e55";

/// 2023-11-14T22:13:20Z.
const NOW_MS: i64 = 1_700_000_000_000;
const NOW_TS: &str = "20231114T221320Z";

fn catalog_text(profile: &str, host: Option<&str>, bin: &str) -> String {
    let host = host.map(|h| format!("host = \"{h}\"\n")).unwrap_or_default();
    format!(
        r#"
[target.db]
kind = "sql"
url = "postgres://app:S3cret%2FPass-42@db.internal:5433/appdb"

[target.mongo]
kind = "mongo"
url = "mongodb://scraper:{MONGO_PASSWORD}@mongo.internal:27017/production_scraping_db"

[profile.{profile}]
{host}values.backup.dir = "/backups"

[command.{profile}."dump"]
summary = "dump with the DSN in the environment"
args = {{ tag = {{ kind = "string", regex = "(?s).{{1,80}}", flag = true }} }}
risk = "write"
roles = ["oncall"]
action = {{ process = {{ argv = ["{bin}pgtool", "--file={{backup.dir}}/db_{{run.ts}}.dump", "--", "{{tag}}"], env = {{ PGHOST = "{{target.db.host}}", PGPORT = "{{target.db.port}}", PGUSER = "{{target.db.user}}", PGPASSWORD = "{{target.db.password}}", PGDATABASE = "{{target.db.database}}", TOKEN = "{{secret.{TOKEN_VAR}}}", MONGO_URL = "{{target.mongo}}", MODE = "plain" }} }} }}

[command.{profile}."twice"]
summary = "two steps, one timestamp"
risk = "write"
roles = ["oncall"]
action = {{ seq = [{{ process = {{ argv = ["{bin}pgtool", "{{backup.dir}}/{{run.ts}}"] }} }}, {{ process = {{ argv = ["{bin}tartool", "{{backup.dir}}/{{run.ts}}.tar.gz"] }} }}] }}
"#
    )
}

fn roles() -> BTreeSet<String> {
    ["oncall", "sre"].iter().map(|s| s.to_string()).collect()
}

fn load(text: &str) -> Result<Catalog, catalog::CheckError> {
    catalog::load_str(
        "env.toml",
        text,
        &catalog::Context {
            roles: &roles(),
            env: &HashMap::new(),
        },
    )
}

/// Stand-ins whose output echoes every secret (so redaction is tested too).
fn stand_ins() -> StandIns {
    let echo =
        format!("pw={DB_PASSWORD} token={TOKEN} url=mongodb://scraper:{MONGO_PASSWORD}@mongo.internal\n");
    StandIns::new(&[("pgtool", echo.as_str()), ("tartool", "ok\n")])
}

/// The bot's environment, holding the token.
fn env_with_token() -> HashMap<String, String> {
    crate::support::bot_env(&[(TOKEN_VAR, TOKEN)])
}

fn secrets() -> [&'static str; 4] {
    [DB_PASSWORD, "S3cret%2FPass-42", TOKEN, MONGO_PASSWORD]
}

fn assert_no_secret(what: &str, text: &str) {
    for s in secrets() {
        assert!(!text.contains(s), "{what} holds the secret {s:?}: {text}");
    }
}

/// An executor whose bot environment holds the token.
fn executor(s: &StandIns, allow: &[&str]) -> opsbot::exec::Executor {
    s.executor_env(allow, &[(TOKEN_VAR, TOKEN)])
        .with_clock(Arc::new(ManualClock::new(NOW_MS)))
}

#[tokio::test]
async fn a_local_process_gets_its_secrets_in_its_environment_and_nowhere_else() {
    let s = stand_ins();
    let bin = s.path("bin");
    let c = load(&catalog_text("app", None, &format!("{bin}/"))).expect("catalog");
    let cmd = c.get("app", "dump").unwrap();
    let a = args(&[("tag", "nightly $(id)")]);

    let rendered = opsbot::exec::render(&cmd.action, &c.targets, &a)
        .unwrap()
        .to_string();
    assert_no_secret("the rendering", &rendered);
    assert!(
        rendered.contains(r#""PGPASSWORD": "<target.db.password>""#),
        "{rendered}"
    );
    assert!(
        rendered.contains(r#""TOKEN": "<secret.OPSBOT_TEST_PROCESS_ENV_TOKEN>""#),
        "{rendered}"
    );
    assert!(rendered.contains("db_<run.ts>.dump"), "{rendered}");

    let program = format!("{bin}/pgtool");
    let out = executor(&s, &[&program])
        .execute(&cmd.action, &c.targets, &a)
        .await
        .expect("runs");
    assert_no_secret("the output", &out.text);
    assert!(out.text.contains("pw=[redacted]"), "{}", out.text);

    let argv = s.only_call("pgtool");
    assert_eq!(
        argv,
        vec![
            format!("--file=/backups/db_{NOW_TS}.dump"),
            "--".to_string(),
            "nightly $(id)".to_string()
        ]
    );
    let env = &s.envs("pgtool")[0];
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("PGPASSWORD"), Some(DB_PASSWORD), "decoded from the URL");
    assert_eq!(get("PGHOST"), Some("db.internal"));
    assert_eq!(get("PGPORT"), Some("5433"));
    assert_eq!(get("PGUSER"), Some("app"));
    assert_eq!(get("PGDATABASE"), Some("appdb"));
    assert_eq!(get("TOKEN"), Some(TOKEN));
    assert_eq!(
        get("MONGO_URL"),
        Some(
            format!("mongodb://scraper:{MONGO_PASSWORD}@mongo.internal:27017/production_scraping_db")
                .as_str()
        )
    );
    assert_eq!(get("MODE"), Some("plain"));
}

#[tokio::test]
async fn over_ssh_the_secrets_go_through_stdin_never_into_the_remote_command() {
    let s = stand_ins();
    let c = load(&catalog_text("app", Some("ssh://deploy@app1.internal"), "")).expect("catalog");
    let cmd = c.get("app", "dump").unwrap();
    let a = args(&[("tag", "x' ; cat /etc/passwd ; '")]);

    let rendered = opsbot::exec::render(&cmd.action, &c.targets, &a).unwrap();
    insta::assert_snapshot!(rendered.to_string());

    executor(&s, &["pgtool"])
        .execute(&cmd.action, &c.targets, &a)
        .await
        .expect("runs");
    let ssh = s.only_call("ssh");
    assert_no_secret("ssh's argv", &ssh.join(" "));
    let remote = ssh.last().unwrap();
    assert!(
        remote.starts_with("IFS= read -r MONGO_URL && IFS= read -r PGDATABASE && "),
        "{remote}"
    );
    assert!(remote.contains("'env' 'MODE=plain' 'pgtool'"), "{remote}");
    let env = &s.envs("pgtool")[0];
    assert_eq!(env.get("PGPASSWORD").map(String::as_str), Some(DB_PASSWORD));
    assert_eq!(env.get("TOKEN").map(String::as_str), Some(TOKEN));
    assert_eq!(env.get("PGPORT").map(String::as_str), Some("5433"));
    assert_eq!(
        s.only_call("pgtool"),
        vec![
            format!("--file=/backups/db_{NOW_TS}.dump"),
            "--".to_string(),
            "x' ; cat /etc/passwd ; '".to_string()
        ]
    );
}

#[tokio::test]
async fn a_missing_secret_or_a_part_the_url_lacks() {
    let s = stand_ins();
    let bin = s.path("bin");
    let text = catalog_text("app", None, &format!("{bin}/"))
        .replace(TOKEN_VAR, "OPSBOT_TEST_PROCESS_ENV_UNSET")
        .replace(
            "postgres://app:S3cret%2FPass-42@db.internal:5433/appdb",
            "postgres://db.internal/appdb",
        );
    let c = load(&text).expect("catalog");
    let cmd = c.get("app", "dump").unwrap();
    let program = format!("{bin}/pgtool");
    let err = executor(&s, &[&program])
        .execute(&cmd.action, &c.targets, &args(&[]))
        .await
        .expect_err("the secret is not set");
    assert!(
        err.to_string()
            .contains("`OPSBOT_TEST_PROCESS_ENV_UNSET` is not set"),
        "{err}"
    );
    assert!(s.calls("pgtool").is_empty(), "nothing ran");

    // Without the secret entry: the URL without port, user and password
    // leaves those entries out (libpq's defaults apply).
    let text = text.replace(", TOKEN = \"{secret.OPSBOT_TEST_PROCESS_ENV_UNSET}\"", "");
    let c = load(&text).expect("catalog");
    let cmd = c.get("app", "dump").unwrap();
    executor(&s, &[&program])
        .execute(&cmd.action, &c.targets, &args(&[]))
        .await
        .expect("runs");
    let env = &s.envs("pgtool")[0];
    let keys: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|k| k.starts_with("PG"))
        .collect();
    assert_eq!(keys, vec!["PGDATABASE", "PGHOST"]);
}

#[tokio::test]
async fn every_step_of_a_seq_sees_the_same_run_timestamp() {
    let s = stand_ins();
    let bin = s.path("bin");
    let c = load(&catalog_text("app", None, &format!("{bin}/"))).expect("catalog");
    let cmd = c.get("app", "twice").unwrap();
    let (pg, tar) = (format!("{bin}/pgtool"), format!("{bin}/tartool"));
    executor(&s, &[&pg, &tar])
        .execute(&cmd.action, &c.targets, &args(&[]))
        .await
        .expect("runs");
    assert_eq!(s.only_call("pgtool"), vec![format!("/backups/{NOW_TS}")]);
    assert_eq!(s.only_call("tartool"), vec![format!("/backups/{NOW_TS}.tar.gz")]);
}

#[test]
fn run_ts_is_utc_and_only_digits_t_and_z() {
    let a = opsbot::exec::with_run_ts(&args(&[]), NOW_MS + 999);
    assert_eq!(a.get("run.ts").map(String::as_str), Some(NOW_TS));
    let a = opsbot::exec::with_run_ts(&args(&[]), 0);
    assert_eq!(a.get("run.ts").map(String::as_str), Some("19700101T000000Z"));
}

#[test]
fn secrets_outside_env_and_unknown_references_are_refused_at_load() {
    let base = r#"
[target.db]
kind = "sql"
url = "postgres://db.internal/appdb"

[profile.app]
values.app.dir = "/srv/app"
"#;
    let cases: &[(&str, &str)] = &[
        (
            r#"action = { process = { argv = ["pg_dump", "{secret.PW}"] } }"#,
            "env.toml:13: template `{secret.PW}` uses `{secret.PW}`, a secret: secrets and target URLs reach a process only through its env, never its argv or cwd",
        ),
        (
            r#"action = { process = { argv = ["pg_dump", "--dbname={target.db}"] } }"#,
            "env.toml:13: template `--dbname={target.db}` uses `{target.db}`, a secret: secrets and target URLs reach a process only through its env, never its argv or cwd",
        ),
        (
            r#"action = { process = { argv = ["pg_dump"], cwd = "{target.db.host}" } }"#,
            "env.toml:13: template `{target.db.host}` uses `{target.db.host}`, a secret: secrets and target URLs reach a process only through its env, never its argv or cwd",
        ),
        (
            r#"action = { process = { argv = ["pg_dump"], env = { PGPASSWORD = "{target.dbx.password}" } } }"#,
            "env.toml:13: template `{target.dbx.password}` uses the unknown target `dbx` (targets: db)",
        ),
        (
            r#"action = { process = { argv = ["pg_dump"], env = { PGPASSWORD = "{target.db.pass}" } } }"#,
            "env.toml:13: template `{target.db.pass}`: a target has no part `pass` (parts: host, port, user, password, database)",
        ),
        (
            r#"action = { process = { argv = ["pg_dump"], env = { "PG-PASSWORD" = "{secret.PW}" } } }"#,
            "env.toml:13: env `PG-PASSWORD` holds a secret: its name must be letters, digits and `_`, not starting with a digit",
        ),
        (
            r#"action = { process = { argv = ["pg_dump"], env = { PGPASSWORD = "{secret.P-W}" } } }"#,
            "env.toml:13: template `{secret.P-W}`: `{secret.P-W}` must name an environment variable (letters, digits and `_`)",
        ),
        (
            r#"action = { process = { argv = ["tar", "{run.date}"] } }"#,
            "env.toml:13: template `{run.date}` uses `{run.date}`: the generated values are {run.ts} (argv and env only)",
        ),
    ];
    for (action, expected) in cases {
        let text = format!(
            "{base}\n[command.app.\"x\"]\nsummary = \"x\"\nrisk = \"write\"\nroles = [\"oncall\"]\n{action}\n"
        );
        let err = load(&text).expect_err(action);
        let msgs: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs, vec![expected.to_string()], "{action}");
    }
}

#[tokio::test]
async fn through_the_pipeline_the_reply_and_the_audit_log_hold_no_secret() {
    for t in both().await {
        let s = stand_ins();
        let bin = s.path("bin");
        let c = load(&catalog_text("queue", None, &format!("{bin}/"))).expect("catalog");
        let cfg = config(&format!("[process]\nallow = [\"{bin}/pgtool\"]\n"));
        let p = pipeline_env(
            &cfg,
            c,
            t.store.clone(),
            crate::support::clock(),
            &env_with_token(),
        );
        let r = say(&p, "console:alice", "/dump --tag nightly").await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert_no_secret("the reply", &r.text);
        assert!(r.text.contains("pw=[redacted]"), "{}", r.text);
        assert_eq!(
            s.envs("pgtool")[0].get("PGPASSWORD").map(String::as_str),
            Some(DB_PASSWORD)
        );
        let records = t.store.audit_records().await.unwrap();
        assert!(!records.is_empty());
        assert_no_secret("the audit log", &format!("{records:?}"));
        t.cleanup().await;
    }
}
