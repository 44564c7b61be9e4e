//! Process actions on a profile's SSH host (runbooks.md §0 "Design gaps"):
//! the exact ssh argv, every element of the remote command quoted so chat
//! values stay one inert argument on the remote shell, config values for
//! files and directories, load-time refusals, env overrides and timeouts.
//! `ssh` is a stand-in that records its argv and runs the remote command
//! with `sh -c`, as sshd does with the remote user's shell.

use crate::support::{args, process_alive, StandIns};
use opsbot::catalog::{self, Catalog};
use opsbot::exec::Rendered;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

const CATALOG: &str = r#"
[profile.app]
host = "ssh://deploy@app1.internal:2222"
ssh_key = "/etc/opsbot/app_ed25519"
values.logs.app = "/var/log/app/app.log"
values.logs.errors = "/var/log/app/error's log"
values.app.dir = "/srv/app"

[command.app."say"]
summary = "echo every kind of argument"
args = { id = { kind = "id" }, e = { kind = "enum", values = ["a b", "x;y"] }, n = { kind = "int", min = -5, max = 5 }, d = { kind = "duration" }, line = { kind = "string", regex = "(?s).{1,200}" } }
risk = "read"
roles = ["oncall"]
action = { process = { argv = ["recorder", "--", "{id}", "{e}", "{n}", "{d}", "{line}"], env = { LINE = "{line}" } } }

[command.app."logs"]
summary = "tail a log"
args = { l = { kind = "enum", values = ["app", "errors"] }, lines = { kind = "int", min = 1, max = 500, flag = true, default = 100 } }
risk = "read"
roles = ["oncall"]
action = { process = { argv = ["tail", "-n", "{lines}", "{logs.<l>}"] } }

[command.app."build"]
summary = "run in the app dir"
risk = "write"
roles = ["oncall"]
action = { process = { argv = ["npm", "run", "build"], cwd = "{app.dir}", env = { NODE_ENV = "production" } } }

[command.app."nap"]
summary = "sleep"
args = { s = { kind = "string", regex = "[0-9.]{1,12}" } }
risk = "read"
roles = ["oncall"]
action = { process = { argv = ["sleep", "{s}"], timeout = "300ms" } }
"#;

fn roles() -> BTreeSet<String> {
    ["oncall", "sre"].iter().map(|s| s.to_string()).collect()
}

fn load_env(text: &str, env: &[(&str, &str)]) -> Result<Catalog, catalog::CheckError> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    catalog::load_str(
        "app.toml",
        text,
        &catalog::Context {
            roles: &roles(),
            env: &env,
        },
    )
}

fn load(env: &[(&str, &str)]) -> Catalog {
    load_env(CATALOG, env).expect("catalog")
}

fn render(c: &Catalog, name: &str, a: &[(&str, &str)]) -> Rendered {
    let cmd = c.get("app", name).expect("command");
    opsbot::exec::render(&cmd.action, &c.targets, &args(a)).expect("renders")
}

fn argv_of(r: &Rendered) -> Vec<String> {
    match r {
        Rendered::Process { argv, .. } => argv.clone(),
        other => panic!("not a process: {other}"),
    }
}

#[tokio::test]
async fn the_bot_runs_ssh_with_the_exact_argv_and_one_quoted_remote_command() {
    let s = StandIns::new(&[("tail", "line 1\nline 2\n")]);
    let c = load(&[]);
    let rendered = render(&c, "logs", &[("l", "errors"), ("lines", "50")]);
    let expected = [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-p",
        "2222",
        "-i",
        "/etc/opsbot/app_ed25519",
        "deploy@app1.internal",
        "--",
        r#"'tail' '-n' '50' '/var/log/app/error'\''s log'"#,
    ];
    assert_eq!(argv_of(&rendered), expected);
    let cmd = c.get("app", "logs").unwrap();
    let out = s
        .executor(&["tail"])
        .execute(
            &cmd.action,
            &c.targets,
            &args(&[("l", "errors"), ("lines", "50")]),
        )
        .await
        .unwrap();
    assert_eq!(out.text, "line 1\nline 2\n");
    // What ran is what was rendered (the stand-in sits where `ssh` would).
    assert_eq!(s.only_call("ssh"), expected[1..]);
    assert_eq!(s.only_call("tail"), ["-n", "50", "/var/log/app/error's log"]);
}

#[tokio::test]
async fn hostile_values_in_every_argument_stay_one_inert_argument_on_the_remote_shell() {
    let s = StandIns::new(&[("recorder", "")]);
    let c = load(&[]);
    let cmd = c.get("app", "say").unwrap();
    let pwned = s.dir.path().join("pwned");
    let p = pwned.display();
    let lines = [
        format!("'; touch {p}; echo '"),
        format!("$(touch {p})"),
        format!("`touch {p}`"),
        format!("\"; touch {p}; \""),
        format!("x\ntouch {p}"),
        format!("a' && touch {p} && '"),
        format!("\\'; touch {p} #"),
        "$HOME ${PATH} * ? [a] ~ & | > < ( ) { } !".to_string(),
    ];
    for (i, line) in lines.iter().enumerate() {
        let a = [
            ("id", "job:1.2-x_y"),
            ("e", if i % 2 == 0 { "a b" } else { "x;y" }),
            ("n", "-5"),
            ("d", "5m"),
            ("line", line.as_str()),
        ];
        let before = s.calls("recorder").len();
        let ex = s.executor(&["recorder"]);
        ex.execute(&cmd.action, &c.targets, &args(&a)).await.unwrap();
        let calls = s.calls("recorder");
        assert_eq!(calls.len(), before + 1, "{line:?}");
        let expected: Vec<String> = ["--", a[0].1, a[1].1, "-5", "5m", line]
            .map(String::from)
            .to_vec();
        assert_eq!(calls[before].argv, expected, "{line:?}");
        assert!(!pwned.exists(), "{line:?} ran a command on the remote shell");
    }
    // The env reached the remote program as one value too, through `env`.
    let r = render(
        &c,
        "say",
        &[
            ("id", "i"),
            ("e", "a b"),
            ("n", "1"),
            ("d", "1s"),
            ("line", "a'b"),
        ],
    );
    let remote = argv_of(&r).pop().unwrap();
    assert_eq!(
        remote,
        r#"'env' 'LINE=a'\''b' 'recorder' '--' 'i' 'a b' '1' '1s' 'a'\''b'"#
    );
}

#[tokio::test]
async fn cwd_and_env_go_into_the_remote_command_and_work_locally_too() {
    let s = StandIns::new(&[("npm", "built\n")]);
    let dir = s.path("srv/app");
    let c = load(&[("OPSBOT_VALUE_APP_APP_DIR", &dir)]);
    let r = render(&c, "build", &[]);
    assert_eq!(
        argv_of(&r).last().unwrap(),
        &format!("cd '{dir}' && 'env' 'NODE_ENV=production' 'npm' 'run' 'build'")
    );
    let cmd = c.get("app", "build").unwrap();
    s.executor(&["npm"])
        .execute(&cmd.action, &c.targets, &args(&[]))
        .await
        .unwrap();
    let calls = s.calls("npm");
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].cwd.as_str(), calls[0].argv.clone()),
        (dir.as_str(), vec!["run".to_string(), "build".into()])
    );
    // `OPSBOT_HOST_APP=local`: the same action on the bot's host, cwd set on the child.
    let local = load(&[("OPSBOT_VALUE_APP_APP_DIR", &dir), ("OPSBOT_HOST_APP", "local")]);
    let r = render(&local, "build", &[]);
    assert_eq!(
        r.to_string(),
        format!(
            "process: [\"npm\", \"run\", \"build\"]\nenv: {{\"NODE_ENV\": \"production\"}}\ncwd: {dir:?}"
        )
    );
}

#[tokio::test]
async fn the_remote_program_must_be_on_the_allow_list_and_ssh_need_not_be() {
    let s = StandIns::new(&[("tail", "")]);
    let c = load(&[]);
    let cmd = c.get("app", "logs").unwrap();
    let err = s
        .executor(&["ssh"])
        .execute(&cmd.action, &c.targets, &args(&[("l", "app"), ("lines", "5")]))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "program `tail` is not on the allow-list");
    assert!(s.calls("ssh").is_empty(), "nothing ran");
}

#[tokio::test]
async fn a_timeout_kills_the_ssh_client() {
    let s = StandIns::new(&[]);
    let c = load(&[]);
    let cmd = c.get("app", "nap").unwrap();
    let started = Instant::now();
    let err = s
        .executor(&["sleep"])
        .execute(&cmd.action, &c.targets, &args(&[("s", "30")]))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        err.to_string(),
        "timed out after 300ms running `sleep` on deploy@app1.internal:2222 (killed)"
    );
    let pid = s.ssh_pid().expect("ssh started");
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) {
        assert!(Instant::now() < deadline, "ssh stand-in {pid} still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn load_refuses_free_text_unknown_values_and_arguments_in_cwd_with_file_and_line() {
    let text = r#"
[profile.app]
host = "ssh://deploy@app1"
values.logs.app = "/var/log/app.log"

[command.app."note"]
summary = "free text to a remote command"
args = { msg = { kind = "string" } }
risk = "read"
roles = ["oncall"]
action = { process = { argv = ["logger", "{msg}"] } }

[command.app."logs"]
summary = "unknown value"
args = { l = { kind = "enum", values = ["app", "nginx"] } }
risk = "read"
roles = ["oncall"]
action = { process = { argv = ["tail", "{logs.db}", "{logs.<l>}"] } }

[command.app."dir"]
summary = "cwd from chat"
args = { d = { kind = "id" } }
risk = "read"
roles = ["oncall"]
action = { process = { argv = ["ls"], cwd = "{d}" } }
"#;
    let err = load_env(text, &[]).unwrap_err().to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert_eq!(
        lines[0],
        "app.toml:11: argument `msg` is free text and may not reach a command on the remote host deploy@app1 (use an enum, int, duration, id or a string with a regex)"
    );
    assert_eq!(
        lines[1],
        "app.toml:18: template `{logs.db}` uses the unknown config value `{logs.db}` (values of profile `app`: logs.app)"
    );
    assert_eq!(
        lines[2],
        "app.toml:18: template `{logs.<l>}`: `l` may be `nginx`, but the config value `{logs.nginx}` is not defined (values of profile `app`: logs.app)"
    );
    assert_eq!(
        lines[3],
        "app.toml:25: cwd `{d}` uses the argument `d`: a working directory comes from config values only"
    );
    // On the bot's own host free text stays one argv element: allowed.
    let local = load_env(text, &[("OPSBOT_HOST_APP", "local")])
        .unwrap_err()
        .to_string();
    assert!(!local.contains("free text"), "{local}");
}

#[test]
fn bad_hosts_are_problems_of_their_section_or_variable() {
    for (host, why) in [
        ("deploy@app1", "must look like ssh://user@host[:port]"),
        ("ssh://app1", "needs a user"),
        ("ssh://-oProxyCommand=x@app1", "not starting with `-`"),
        ("ssh://u@app1:99999", "port `99999`"),
    ] {
        let text = format!("\n[profile.app]\nhost = \"{host}\"\n\n[command.app.\"x\"]\nsummary = \"x\"\nrisk = \"read\"\nroles = [\"oncall\"]\naction = {{ process = {{ argv = [\"true\"] }} }}\n");
        let err = load_env(&text, &[]).unwrap_err().to_string();
        assert!(err.starts_with("app.toml:2: profile `app`: "), "{err}");
        assert!(err.contains(why), "{host}: {err}");
        let from_env = load_env(CATALOG, &[("OPSBOT_HOST_APP", host)])
            .unwrap_err()
            .to_string();
        assert!(
            from_env.starts_with("OPSBOT_HOST_APP:0: profile `app`: "),
            "{from_env}"
        );
    }
    let c = load(&[
        ("OPSBOT_HOST_APP", "ssh://ops@10.0.0.7"),
        ("OPSBOT_HOST_APP_KEY", "/k"),
    ]);
    let argv = argv_of(&render(&c, "logs", &[("l", "app"), ("lines", "1")]));
    assert_eq!(argv[5..8], ["-i", "/k", "ops@10.0.0.7"]);
}

#[test]
fn shell_quoting_round_trips_through_a_real_shell() {
    for s in ["", "a", "it's", "''", "a\\'b", "$(id)", "\n", "x y\tz", "'\"'\"'"] {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", opsbot::exec::shell_quote(s)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
    }
}

#[tokio::test]
async fn a_program_on_one_profiles_allow_list_runs_for_that_profile_only() {
    let s = StandIns::new(&[("tail", "ok\n")]);
    let limits = |profile: &str| opsbot::exec::Limits {
        process_allow_by_profile: [(profile.to_string(), vec!["tail".to_string()])].into(),
        ssh_program: s.ssh(),
        ..opsbot::exec::Limits::default()
    };
    let c = load(&[]);
    let cmd = c.get("app", "logs").unwrap();
    let a = args(&[("l", "app"), ("lines", "5")]);
    let other = opsbot::exec::Executor::new(limits("other"), vec![], crate::support::bot_env(&[]));
    let err = other.execute(&cmd.action, &c.targets, &a).await.unwrap_err();
    assert_eq!(err.to_string(), "program `tail` is not on the allow-list");
    let own = opsbot::exec::Executor::new(limits("app"), vec![], crate::support::bot_env(&[]));
    assert_eq!(
        own.execute(&cmd.action, &c.targets, &a).await.unwrap().text,
        "ok\n"
    );
    assert_eq!(s.only_call("tail"), ["-n", "5", "/var/log/app/app.log"]);
}
