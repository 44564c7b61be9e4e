//! The `opsbot` binary as a user runs it: separate `run` calls sharing a
//! store, exit codes, `check`, `commands --json`, and `serve`.

use crate::support::{FakeTarget, TestStore, PEOPLE};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Sandbox {
    dir: tempfile::TempDir,
    target: String,
    database_url: Option<String>,
}

/// The `[process]` tables of the shipped config, as config text.
fn shipped_process_config() -> String {
    let text = std::fs::read_to_string("config/opsbot.toml").unwrap();
    let mut shipped: toml::Table = toml::from_str(&text).unwrap();
    let mut only = toml::Table::new();
    only.insert("process".into(), shipped.remove("process").expect("[process]"));
    toml::to_string(&only).unwrap()
}

impl Sandbox {
    /// A config dir + the shipped catalog, a fresh SQLite file, the queue API at `target`.
    fn new(target: &str) -> Sandbox {
        Self::with_config(target, "")
    }

    /// [`Sandbox::new`] with `extra` config text; the shipped config's
    /// `[process]` allow-lists unless `extra` has its own.
    fn with_config(target: &str, extra: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        let process = if extra.contains("[process") {
            String::new()
        } else {
            shipped_process_config()
        };
        let cfg = format!("{PEOPLE}\n[channels.console]\nprofile = \"queue\"\n{extra}\n{process}");
        std::fs::write(dir.path().join("config/opsbot.toml"), cfg).unwrap();
        Sandbox {
            dir,
            target: target.into(),
            database_url: None,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `opsbot check` of this config with the catalog in `commands`.
    fn check_commands(&self, commands: &Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_opsbot"))
            .arg("check")
            .env("OPSBOT_CONFIG", self.path("config/opsbot.toml"))
            .env("OPSBOT_COMMANDS_DIR", commands)
            .output()
            .unwrap()
    }

    fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.path("opsbot.db").display()))
    }

    fn opsbot(&self, args: &[&str]) -> Output {
        self.opsbot_env(args, &[])
    }

    /// `opsbot args` with owned `extra` variables in its environment.
    fn opsbot_with(&self, args: &[&str], extra: &[(String, String)]) -> Output {
        let env: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.opsbot_env(args, &env)
    }

    /// `opsbot` with `env` added to the sandbox's environment (it wins).
    fn opsbot_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        Command::new(env!("CARGO_BIN_EXE_opsbot"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("OPSBOT_CONFIG", self.path("config/opsbot.toml"))
            .env("OPSBOT_COMMANDS_DIR", repo.join("commands"))
            .env("OPSBOT_DATABASE_URL", self.database_url())
            .env("OPSBOT_TARGET_QUEUE_API", &self.target)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_across_separate_run_calls_on_sqlite() {
    let target = FakeTarget::start().await;
    transcript(&Sandbox::new(&target.url), &target);
}

/// The same transcript with `OPSBOT_DATABASE_URL=postgres://…` (a private schema).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_across_separate_run_calls_on_postgres() {
    let target = FakeTarget::start().await;
    let t = TestStore::postgres().await;
    let mut sb = Sandbox::new(&target.url);
    let sep = if t.url.contains('?') { '&' } else { '?' };
    sb.database_url = Some(format!(
        "{}{sep}options=-c%20search_path%3D{}",
        t.url,
        t.schema().unwrap()
    ));
    transcript(&sb, &target);
    let a = t.store.approval(1).await.unwrap().unwrap();
    assert_eq!(
        a.state,
        opsbot::approval::State::Succeeded,
        "the run calls used the test schema"
    );
    t.cleanup().await;
}

fn transcript(sb: &Sandbox, target: &FakeTarget) {
    let run = |who: &str, text: &str| sb.opsbot(&["run", "--as", who, text]);
    let o = tokio::task::block_in_place(|| run("console:alice", "/queue stats"));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("ai-analysis"));
    let o = tokio::task::block_in_place(|| run("console:alice", "/queue retry ai-analysis"));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let text = stdout(&o);
    assert!(
        text.starts_with("approval requested: a1 (needs sre or eng-manager, expires in 15m)"),
        "{text}"
    );
    let o = tokio::task::block_in_place(|| run("console:alice", "/approve a1"));
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (
            Some(3),
            "refused: you requested a1; another person must approve it".into()
        )
    );
    let o = tokio::task::block_in_place(|| run("console:bob", "/approve a1"));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stdout(&o).contains("Retried 37 failed jobs in ai-analysis"),
        "{}",
        stdout(&o)
    );
    assert_eq!(target.count("POST", "/api/queue/ai-analysis/retry-failed"), 1);
    let o = tokio::task::block_in_place(|| run("console:bob", "/approve a1"));
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (Some(3), "refused: a1 already executed".into())
    );
    let o = tokio::task::block_in_place(|| run("console:alice", "/queue retyr ai-analysis"));
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = tokio::task::block_in_place(|| sb.opsbot(&["audit", "verify"]));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).starts_with("ok: "), "{}", stdout(&o));
}

/// `opsbot run --as slack:U0BOB "/approve a1"` used to approve as bob, and
/// the audit showed bob approving from Slack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_cannot_act_as_a_chat_identity() {
    let target = FakeTarget::start().await;
    let sb = Sandbox::new(&target.url);
    let o = tokio::task::block_in_place(|| {
        sb.opsbot(&["run", "--as", "console:alice", "/queue retry ai-analysis"])
    });
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    for who in ["slack:U0BOB", "discord:111", "bob"] {
        let o = tokio::task::block_in_place(|| sb.opsbot(&["run", "--as", who, "/approve a1"]));
        assert_eq!(o.status.code(), Some(2), "{who}: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("is not a console identity"), "{who}: {err}");
        assert_eq!(stdout(&o), "");
    }
    assert_eq!(target.count("POST", "/api/queue/ai-analysis/retry-failed"), 0);
    // Without --as: the OS user, as a console identity.
    let o = tokio::task::block_in_place(|| sb.opsbot_env(&["run", "/approve a1"], &[("USER", "bob")]));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(target.count("POST", "/api/queue/ai-analysis/retry-failed"), 1);
    let store = opsbot::store::Store::connect(&sb.database_url()).await.unwrap();
    let records = store.audit_records().await.unwrap();
    let seen: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| {
            let e = &r.entry;
            (e.kind.as_str(), e.identity.as_str(), e.source.as_str())
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("approval.requested", "console:alice", "console"),
            ("approval.approved", "console:bob", "console"),
            ("execution", "console:bob", "console"),
        ]
    );
    store.close().await;
}

/// `opsbot audit verify` finds a removed tail (exit 1), against the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_exits_1_when_the_tail_was_removed() {
    let target = FakeTarget::start().await;
    let sb = Sandbox::new(&target.url);
    for _ in 0..2 {
        let o = tokio::task::block_in_place(|| sb.opsbot(&["run", "--as", "console:alice", "/queue stats"]));
        assert_eq!(o.status.code(), Some(0), "{o:?}");
    }
    let o = tokio::task::block_in_place(|| sb.opsbot(&["audit", "verify"]));
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (Some(0), "ok: 2 audit entries, chain intact".into())
    );
    let store = opsbot::store::Store::connect(&sb.database_url()).await.unwrap();
    store
        .tamper_for_tests("DROP TRIGGER audit_log_no_delete")
        .await
        .unwrap();
    store
        .tamper_for_tests("DELETE FROM audit_log WHERE seq = 2")
        .await
        .unwrap();
    store.close().await;
    let o = tokio::task::block_in_place(|| sb.opsbot(&["audit", "verify"]));
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (
            Some(1),
            "audit chain broken: the log ends at entry 1 but its head says 2 (tail removed?)".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_action_exits_1() {
    let sb = Sandbox::new(&crate::support::dead_url().await);
    let o = tokio::task::block_in_place(|| {
        sb.opsbot(&["run", "--as", "console:alice", "/queue pause ai-analysis"])
    });
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("queue_api"), "{}", stdout(&o));
}

#[test]
fn check_passes_on_the_shipped_config_and_catalog() {
    let sb = Sandbox::new("http://127.0.0.1:1");
    let o = sb.opsbot(&["check"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).starts_with("ok: "), "{}", stdout(&o));
    // The account API seed 002 does not name ships unset: check says so,
    // and which commands wait for it.
    assert!(
        stdout(&o).contains(
            "note: target `chat_accounts` has no URL: set OPSBOT_TARGET_CHAT_ACCOUNTS (refused until then: /security disable-account (chat))"
        ),
        "{}",
        stdout(&o)
    );
    let set = sb.opsbot_env(
        &["check"],
        &[("OPSBOT_TARGET_CHAT_ACCOUNTS", "http://accounts.internal")],
    );
    assert_eq!(set.status.code(), Some(0), "{set:?}");
    assert!(!stdout(&set).contains("note:"), "{}", stdout(&set));
}

#[test]
fn check_reports_every_problem_with_file_and_line() {
    let sb = Sandbox::new("http://127.0.0.1:1");
    let cmds = sb.path("commands");
    std::fs::create_dir_all(&cmds).unwrap();
    std::fs::write(
        cmds.join("bad.toml"),
        r#"[target.api]
kind = "http"
url = "http://x"

[command.queue."queue stats"]
summary = "s"
risk = "read"
roles = ["wizard"]
action = { http = { target = "nope", path = "/x/{missing}" } }

[command.queue."queue pause"]
summary = "s"
args = { q = { kind = "colour" } }
risk = "write"
roles = ["oncall"]
action = { http = { target = "api", path = "/x" } }
"#,
    )
    .unwrap();
    let o = sb.check_commands(&cmds);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let file = cmds.join("bad.toml").display().to_string();
    for expected in [
        format!("{file}:8: unknown role `wizard` in roles"),
        format!("{file}:9: unknown target `nope`"),
        format!("{file}:9: template `/x/{{missing}}` uses `{{missing}}`, which is not a defined argument"),
        format!("{file}:13: argument `q`: unknown kind `colour`"),
    ] {
        assert!(out.contains(&expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn check_reports_remote_programs_off_the_profiles_allow_list_and_free_text() {
    let sb = Sandbox::with_config(
        "http://127.0.0.1:1",
        "[process]\nallow = [\"df\"]\n[process.chat]\nallow = [\"pm2\"]\n",
    );
    let cmds = sb.path("commands");
    std::fs::create_dir_all(&cmds).unwrap();
    let profile = "[profile.queue]\nhost = \"ssh://opsbot@queue-app\"\n\n";
    let command = |args: &str, argv: &str| {
        format!("{profile}[command.queue.\"ops x\"]\nsummary = \"s\"\n{args}risk = \"read\"\nroles = [\"oncall\"]\naction = {{ process = {{ argv = {argv} }} }}\n")
    };
    let check = || {
        let o = sb.check_commands(&cmds);
        assert_eq!(o.status.code(), Some(1), "{o:?}");
        stdout(&o)
    };
    let file = cmds.join("x.toml").display().to_string();
    // pm2 is allowed for chat only, df for every profile.
    std::fs::write(cmds.join("x.toml"), command("", r#"["pm2", "list"]"#)).unwrap();
    let out = check();
    let expected =
        format!("{file}:4: program `pm2` is not in [process] allow nor [process.queue] allow of the config");
    assert!(out.contains(&expected), "missing `{expected}` in:\n{out}");
    std::fs::write(
        cmds.join("x.toml"),
        command("args = { m = { kind = \"string\" } }\n", r#"["df", "{m}"]"#),
    )
    .unwrap();
    let out = check();
    assert!(out.contains(&format!("{file}:9: argument `m` is free text and may not reach a command on the remote host opsbot@queue-app")), "{out}");
}

#[test]
fn check_reports_config_syntax_errors_with_line() {
    let sb = Sandbox::new("http://127.0.0.1:1");
    std::fs::write(
        sb.path("config/opsbot.toml"),
        "listen = \"x\"\n[people.zed]\nroles = \"sre\"\n",
    )
    .unwrap();
    let o = sb.opsbot(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("opsbot.toml:3: "), "{err}");
}

#[test]
fn commands_json_lists_the_catalog() {
    let sb = Sandbox::new("http://127.0.0.1:1");
    let o = sb.opsbot(&["commands", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let retry = list
        .iter()
        .find(|c| c["name"] == "queue retry")
        .expect("queue retry");
    assert_eq!(retry["profile"], "queue");
    assert_eq!(retry["usage"], "/queue retry <queue:ai-analysis>");
    assert_eq!(retry["risk"], "write");
    assert_eq!(retry["action_kind"], "http");
    assert_eq!(
        retry["approval"],
        serde_json::json!({"roles": ["sre", "eng-manager"], "count": 1, "ttl_secs": 900})
    );
    let stats = list.iter().find(|c| c["name"] == "queue stats").unwrap();
    assert_eq!(stats["approval"], serde_json::Value::Null);
    for (name, kind) in [
        ("queue clean-all", "http"),
        ("cache get", "redis"),
        ("db slow", "sql"),
    ] {
        let c = list.iter().find(|c| c["name"] == name).expect(name);
        assert_eq!(
            (c["profile"].as_str(), c["action_kind"].as_str()),
            (Some("queue"), Some(kind))
        );
    }
    // One command, two forms, each with its own approvers (RB-1, RB-2).
    let rollback = list.iter().find(|c| c["name"] == "rollback").expect("rollback");
    assert_eq!(rollback["approval"], serde_json::Value::Null);
    assert_eq!(
        rollback["variants"],
        serde_json::json!({"by": "emergency", "forms": [
            {"form": "--emergency", "value": "true", "only_args": ["disable"],
             "approval": {"roles": ["eng-manager", "sre"], "count": 1, "ttl_secs": 900, "break_glass": true}},
            {"form": "without --emergency", "value": "false", "only_args": [],
             "approval": {"roles": ["sre", "tech-lead"], "count": 1, "ttl_secs": 900}},
        ]})
    );
    let o = sb.opsbot(&["commands"]);
    let line = stdout(&o)
        .lines()
        .find(|l| l.contains("/rollback"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.ends_with(
            "· --emergency: approval eng-manager/sre · without --emergency: approval sre/tech-lead"
        ),
        "{line}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `opsbot serve` on `port` with `env` added; waits until `/healthz` answers.
async fn serve(sb: &Sandbox, port: u16, env: &[(&str, String)]) -> tokio::process::Child {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsbot"))
        .arg("serve")
        .env("OPSBOT_CONFIG", sb.path("config/opsbot.toml"))
        .env("OPSBOT_COMMANDS_DIR", repo.join("commands"))
        .env("OPSBOT_DATABASE_URL", sb.database_url())
        .env("OPSBOT_LISTEN", format!("127.0.0.1:{port}"))
        .env("OPSBOT_LOG_FORMAT", "json")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            return child;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("server did not come up");
}

/// SIGTERM, then the exit status and everything logged.
async fn terminate(mut child: tokio::process::Child) -> (std::process::ExitStatus, String) {
    let pid = child.id().unwrap();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    let mut err = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    (status, err)
}

async fn get(url: String) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn serve_answers_health_ready_metrics_and_stops_on_sigterm() {
    let sb = Sandbox::new("http://127.0.0.1:1");
    let port = free_port();
    let child = serve(&sb, port, &[]).await;
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get(format!("{base}/readyz")).await.0, 200);
    let (_, m) = get(format!("{base}/metrics")).await;
    assert!(m.contains("opsbot_approvals{state=\"pending\"} 0"), "{m}");
    let (status, err) = terminate(child).await;
    assert!(status.success(), "graceful exit: {status:?}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "json logs: {err}"
    );
}

/// `OPSBOT_METRICS_LISTEN`: `/metrics` there and only there.
#[tokio::test]
async fn metrics_can_have_their_own_listen_address() {
    let sb = Sandbox::new("http://127.0.0.1:1");
    let (port, metrics_port) = (free_port(), free_port());
    let env = [("OPSBOT_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))];
    let child = serve(&sb, port, &env).await;
    assert_eq!(get(format!("http://127.0.0.1:{port}/metrics")).await.0, 404);
    let (status, m) = get(format!("http://127.0.0.1:{metrics_port}/metrics")).await;
    assert_eq!(status, 200);
    assert!(m.contains("opsbot_requests_total"), "{m}");
    assert_eq!(
        get(format!("http://127.0.0.1:{metrics_port}/healthz")).await.0,
        404
    );
    let (status, err) = terminate(child).await;
    assert!(status.success(), "both listeners stop: {status:?} {err}");
}

#[test]
fn check_reports_config_cross_problems_with_lines() {
    let sb = Sandbox::new("http://127.0.0.1:1");
    std::fs::write(
        sb.path("config/opsbot.toml"),
        "[profiles]\nenabled = [\"queue\", \"nope\"]\n\n[channels.C9]\nprofile = \"pdf\"\n\n[people.zed]\nconsole = \"zed\"\nroles = [\"wizard\"]\n\n[people.zoe]\nconsole = \"zed\"\nroles = [\"sre\"]\n",
    )
    .unwrap();
    let o = sb.opsbot(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let file = sb.path("config/opsbot.toml").display().to_string();
    for expected in [
        format!("{file}:2: profile `nope` is enabled but has no commands"),
        format!("{file}:4: channel `C9` is bound to profile `pdf`, which is not enabled"),
        format!("{file}:7: person `zed`: unknown role `wizard`"),
        format!("{file}:11: identity `console:zed` belongs to both `zed` and `zoe`"),
    ] {
        assert!(out.contains(&expected), "missing `{expected}` in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_register_overwrites_the_commands_and_check_knows_discord() {
    use crate::fake_discord::{FakeDiscord, APPLICATION_ID, BOT_TOKEN};
    let fake = FakeDiscord::start().await;
    let sb = Sandbox::new("http://127.0.0.1:9");
    let token_file = sb.path("discord-token");
    std::fs::write(&token_file, format!("{BOT_TOKEN}\n")).unwrap();
    let public_key = hex::encode(crate::support::discord_key().verifying_key().to_bytes());
    let env: Vec<(String, String)> = [
        ("DISCORD_PUBLIC_KEY", public_key.as_str()),
        ("DISCORD_BOT_TOKEN_FILE", token_file.to_str().unwrap()),
        ("DISCORD_APPLICATION_ID", APPLICATION_ID),
        ("OPSBOT_DISCORD_API_URL", &fake.url()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (check, register, unset) = tokio::task::spawn_blocking(move || {
        (
            sb.opsbot_with(&["check"], &env),
            sb.opsbot_with(&["discord-register", "--guild", "G1"], &env),
            sb.opsbot(&["discord-register"]),
        )
    })
    .await
    .unwrap();
    assert!(check.status.success(), "{}", stdout(&check));
    assert!(
        register.status.success(),
        "{}",
        String::from_utf8_lossy(&register.stderr)
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert_eq!(
        calls[0].path,
        format!("/applications/{APPLICATION_ID}/guilds/G1/commands")
    );
    let n = calls[0].body.as_array().unwrap().len();
    assert_eq!(stdout(&register), format!("registered {n} commands in guild G1"));
    assert!(
        !stdout(&register).contains(BOT_TOKEN)
            && !String::from_utf8_lossy(&register.stderr).contains(BOT_TOKEN)
    );
    assert_eq!(unset.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unset.stderr).contains("DISCORD_PUBLIC_KEY"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incident_run_from_the_console_exports_as_a_postmortem() {
    let sb = Sandbox::with_config("http://127.0.0.1:9", crate::incidents::POLICY);
    let run = |who: &str, text: &str| sb.opsbot(&["run", "--as", who, text]);
    for (who, text) in [
        ("console:alice", "/incident declare P0 checkout is down"),
        ("console:bob", "/incident ack #1"),
        ("console:bob", "/incident update #1 failover started"),
        ("console:bob", "/incident followup #1 alert on replica lag"),
        ("console:bob", "/incident resolve #1 failover done"),
    ] {
        let o = tokio::task::block_in_place(|| run(who, text));
        assert_eq!(o.status.code(), Some(0), "{text}: {o:?}");
    }
    let o = tokio::task::block_in_place(|| sb.opsbot(&["incident", "export", "#1"]));
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let md = stdout(&o);
    assert!(md.starts_with("# Incident #1 — P0 checkout is down"), "{md}");
    for part in [
        "| ack | bob |",
        "| update | bob | failover started |",
        "- [ ] alert on replica lag (bob)",
        "## Root cause",
    ] {
        assert!(md.contains(part), "{part} in {md}");
    }
    let o = tokio::task::block_in_place(|| sb.opsbot(&["incident", "export", "1", "--format", "json"]));
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
    assert_eq!(
        (j["state"].as_str(), j["summary"].as_str()),
        (Some("resolved"), Some("failover done"))
    );
    let o = tokio::task::block_in_place(|| sb.opsbot(&["incident", "export", "99"]));
    assert_eq!(
        (o.status.code(), stdout(&o)),
        (Some(1), "there is no incident #99".into())
    );
}

/// The timeline of incident `id` as `opsbot incident export --format json`
/// prints it: (kind, person, text) rows.
fn timeline(sb: &Sandbox, id: &str) -> Vec<(String, String, String)> {
    let o = sb.opsbot(&["incident", "export", id, "--format", "json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    j["timeline"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                    (s("kind"), s("person"), s("text"))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pages(rows: &[(String, String, String)]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.0 == "page")
        .map(|r| format!("{} {}", r.1, r.2))
        .collect()
}

/// `kill -9` of the serving process in the middle of an escalation chain:
/// after the restart the steps that came due while it was down fire at
/// once, in due order, and none fires twice.
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_mid_chain_loses_no_step_and_repeats_none() {
    let policy = crate::incidents::POLICY
        .replace("after = \"5m\"", "after = \"3s\"")
        .replace("after = \"15m\"", "after = \"4s\"");
    let sb = Sandbox::with_config("http://127.0.0.1:9", &policy);
    let run = |who: &str, text: &str| sb.opsbot(&["run", "--as", who, text]);
    for text in [
        "/oncall override alice 1h",
        "/oncall override bob 1h --rotation secondary",
        "/incident declare P0 checkout is down",
    ] {
        let o = tokio::task::block_in_place(|| run("console:alice", text));
        assert_eq!(o.status.code(), Some(0), "{text}: {o:?}");
    }
    let declared = std::time::Instant::now();
    let port = free_port();
    let mut child = serve(&sb, port, &[]).await;
    // Step 1 fires at once; kill the process the moment its page is stored.
    loop {
        let rows = tokio::task::block_in_place(|| timeline(&sb, "1"));
        if !pages(&rows).is_empty() {
            break;
        }
        assert!(
            declared.elapsed() < std::time::Duration::from_secs(10),
            "step 1 never fired"
        );
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let rows = tokio::task::block_in_place(|| timeline(&sb, "1"));
    assert_eq!(
        pages(&rows),
        ["alice step 1: rotation:primary"],
        "before the restart"
    );
    // Steps 2 (3s) and 3 (4s) come due while nothing runs.
    while declared.elapsed() < std::time::Duration::from_millis(4_500) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let child = serve(&sb, port, &[]).await;
    loop {
        let rows = tokio::task::block_in_place(|| timeline(&sb, "1"));
        if pages(&rows).len() >= 3 {
            break;
        }
        assert!(
            declared.elapsed() < std::time::Duration::from_secs(15),
            "overdue steps never fired: {rows:?}"
        );
    }
    let (status, _) = terminate(child).await;
    assert!(status.success());
    let rows = tokio::task::block_in_place(|| timeline(&sb, "1"));
    assert_eq!(
        pages(&rows),
        [
            "alice step 1: rotation:primary",
            "bob step 2: rotation:secondary",
            "carol step 3: role:eng-manager"
        ],
        "each once, in due order: {rows:?}"
    );
}

#[test]
fn check_reports_alert_route_and_key_problems_with_lines() {
    let sb = Sandbox::new("http://127.0.0.1:1");
    let cfg = format!(
        "{PEOPLE}\n[alerts]\nto = [\"slack:C1\"]\n\n[[alerts.routes]]\nname = \"q\"\nmatch = ['queue=~\"(\"']\nprofile = \"queue\"\n"
    );
    std::fs::write(sb.path("config/opsbot.toml"), &cfg).unwrap();
    let o = sb.opsbot(&["check"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = stdout(&o);
    let file = sb.path("config/opsbot.toml").display().to_string();
    let lines: Vec<&str> = cfg.lines().collect();
    let line = |needle: &str| lines.iter().rposition(|l| l.contains(needle)).unwrap() + 1;
    for expected in [
        format!(
            "{file}:{}: alerts: matcher `queue=~\"(\"`: bad regex",
            line("queue=~")
        ),
        format!(
            "{file}:{}: alerts: profile `queue` has no [policies.queue]",
            line("profile = \"queue\"")
        ),
    ] {
        assert!(out.contains(&expected), "missing `{expected}` in:\n{out}");
    }
    // A PagerDuty integration key of the wrong length: the config is refused.
    let o = sb.opsbot_env(&["check"], &[("OPSBOT_ALERT_ROUTING_KEY_PDF", "too-short")]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("OPSBOT_ALERT_ROUTING_KEY_PDF must be a 32-character integration key"),
        "{err}"
    );
    assert!(!err.contains("too-short"), "the key is a secret: {err}");
}
