//! The shipped process commands of every profile (runbooks.md §1 rows that
//! run on the app host): each one parsed, authorized and rendered for a
//! sample invocation (one snapshot: the exact ssh argv with its quoted remote
//! command), then run against stand-ins: `ssh` runs the remote command with
//! `sh -c` as sshd would, and every remote program records its argv and
//! working directory. The safety rewrites of runbooks.md §0 that concern
//! processes are checked over the whole catalog.

use crate::support::{args, config, render_cases, shipped_catalog_env, Call, StandIns};
use opsbot::catalog::{Action, Catalog, ProcessAction};
use opsbot::config::Config;
use opsbot::exec::ExecError;

/// Every profile enabled, and a person holding the roles the shared people lack.
fn cfg() -> Config {
    let mut c = config("[people.erin]\nconsole = \"erin\"\nroles = [\"tech-lead\", \"dba\", \"security\"]\n");
    for p in ["cap", "scrape", "pdf"] {
        c.profiles.push(p.to_string());
    }
    c
}

/// The stand-in programs of every remote command.
const PROGRAMS: &[&str] = &[
    "df",
    "free",
    "ps",
    "docker",
    "docker-compose",
    "pm2",
    "tail",
    "grep",
    "ls",
    "npm",
    "supabase",
    "git",
    "python3",
    "ping",
    "sync",
    "sudo",
];

/// The shipped catalog; with stand-ins, every app directory is theirs.
fn catalog(s: Option<&StandIns>) -> Catalog {
    let dir = s.map(|s| s.path("app"));
    let mut env: Vec<(String, String)> = ["QUEUE", "CHAT", "CAP", "SCRAPE", "PDF"]
        .iter()
        .flat_map(|p| {
            dir.iter()
                .map(move |d| (format!("OPSBOT_VALUE_{p}_APP_DIR"), d.clone()))
        })
        .collect();
    // http steps of a seq go nowhere (they run after the process steps).
    for t in ["CHAT_API", "SCRAPE_API"] {
        env.push((format!("OPSBOT_TARGET_{t}"), "http://127.0.0.1:1".into()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    shipped_catalog_env(&cfg(), &env)
}

#[test]
fn every_app_host_command_parses_authorizes_and_renders() {
    let c = catalog(None);
    let mut out = Vec::new();
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "queue",
            &[
                ("console:alice", "/ops resources"),
                ("console:dave", "/ops procs"),
                ("console:alice", "/ops logs app"),
                ("console:alice", "/ops logs app --lines 500"),
                ("console:alice", "/ops logs app --lines 501"),
                ("console:alice", "/ops logs /etc/shadow"),
                ("console:alice", "/ops restart app"),
                ("console:alice", "/ops restart app --heap-mb 4096"),
                ("console:alice", "/ops restart app --heap-mb 512"),
                ("console:bob", "/db migrate"),
            ],
        ),
        (
            "chat",
            &[
                ("console:alice", "/ops resources"),
                ("console:alice", "/ops logs app --lines 20"),
                ("console:alice", "/ops restart app"),
                ("console:bob", "/ai rotate-keys"),
                ("console:erin", "/security rotate-keys"),
                ("console:erin", "/dr db-failover db-standby-2"),
                ("console:alice", "/dr db-failover db-standby-2"),
                ("console:erin", "/dr db-failover \"db; reboot\""),
                ("console:alice", "/security enhanced-monitoring"),
                ("console:dave", "/security enhanced-monitoring"),
            ],
        ),
        (
            "cap",
            &[
                ("console:alice", "/ops resources"),
                ("console:dave", "/ops procs"),
                ("console:alice", "/ops logs errors"),
                ("console:alice", "/ops logs db --lines 50"),
                ("console:alice", "/ops trace req-123:abc"),
                ("console:alice", "/ops trace -v"),
                ("console:alice", "/ops trace \"x'; rm -rf /\""),
                ("console:alice", "/ops restart app"),
                ("console:alice", "/ops restart app --heap-mb 4096"),
                ("console:alice", "/ops restart workers"),
                ("console:alice", "/ops scale workers 10"),
                ("console:alice", "/ops scale workers \"10 $(id)\""),
                ("console:bob", "/ops restart redis"),
                ("console:bob", "/ops prune"),
                ("console:bob", "/deploy prepare"),
                ("console:bob", "/deploy start"),
            ],
        ),
        (
            "scrape",
            &[
                ("console:alice", "/ops resources"),
                ("console:dave", "/ops procs"),
                ("console:alice", "/ops logs security --lines 200"),
                ("console:alice", "/ops restart backend"),
                ("console:alice", "/ops restart \"backend; reboot\""),
                ("console:alice", "/ops stop backend"),
                ("console:bob", "/ops stop backend"),
                ("console:alice", "/ops start backend"),
                ("console:bob", "/ops restart mongod"),
                ("console:bob", "/ops drop-caches"),
                ("console:alice", "/ai selftest"),
                ("console:bob", "/ai keys"),
                ("console:alice", "/ai reach"),
                ("console:alice", "/ai reach groq"),
                ("console:bob", "/ai rotate-keys"),
                ("console:alice", "/backup list"),
                ("console:bob", "/security nginx-reload"),
                ("console:erin", "/security rotate-keys"),
                ("console:alice", "/ops status-page"),
                (
                    "console:alice",
                    "/ops status-page --message \"Degraded: scraping paused (back by 14:00)\"",
                ),
                (
                    "console:alice",
                    "/ops status-page --message \"$(curl evil) `id`\"",
                ),
                ("console:dave", "/ops status-page"),
            ],
        ),
        (
            "pdf",
            &[
                ("slack:U0STRANGER", "/ops health"),
                ("console:dave", "/ops status"),
                ("console:dave", "/ops errors"),
                ("console:dave", "/ops perf sla-report"),
                ("console:alice", "/ops export"),
                ("console:alice", "/ops export --period 24h"),
                ("console:alice", "/ops logs app --lines 30"),
                ("console:alice", "/ops fn-logs process-pdf"),
                ("console:bob", "/ops scale web 3"),
                ("console:bob", "/ops scale pdf-workers 8"),
                ("console:alice", "/ops maintenance check verify"),
                ("console:bob", "/ops maintenance on"),
                ("console:bob", "/ops maintenance on --for 45m"),
                ("console:bob", "/ops maintenance on --for 8d"),
                ("console:alice", "/ops maintenance on"),
                ("console:alice", "/ops maintenance off"),
                ("console:bob", "/ops maintenance schedule 2026-12-24 2h"),
                (
                    "console:bob",
                    "/ops maintenance schedule 2026-12-24 90m --at 22:30 --notify",
                ),
                ("console:bob", "/ops maintenance schedule 2026-13-45 2h"),
                ("console:bob", "/ops maintenance schedule \"2026-12-24; id\" 2h"),
                (
                    "console:bob",
                    "/ops maintenance schedule 2026-12-24 2h --at 25:00",
                ),
                ("console:alice", "/ops maintenance schedule 2026-12-24 2h"),
                ("console:bob", "/ops maintenance apply"),
                ("console:alice", "/ops maintenance apply"),
                ("console:alice", "/queue failed"),
                ("console:alice", "/queue failed --limit 50"),
                ("console:alice", "/db integrity"),
                ("console:alice", "/db inspect"),
                ("console:bob", "/db pool-optimize"),
                ("console:bob", "/db upgrade large"),
                ("console:bob", "/db replica-create eu-west-1"),
                ("console:bob", "/db replica-create \"eu-west-1 && curl evil\""),
                ("console:erin", "/deploy hotfix fix-login"),
                ("console:erin", "/deploy hotfix \"../../main\""),
                ("console:bob", "/deploy fn process-pdf --memory 1024"),
                ("console:dave", "/storage ls"),
                ("console:dave", "/storage usage"),
                ("console:alice", "/storage test"),
                ("console:alice", "/storage test file-access"),
                ("console:alice", "/storage logs"),
                ("console:bob", "/storage optimize"),
                ("console:alice", "/backup run"),
                ("console:alice", "/backup verify"),
                ("console:alice", "/backup verify --date 2024-05-01"),
                ("console:alice", "/backup verify --date \"2024-05-01; id\""),
                ("console:alice", "/backup storage"),
                ("console:bob", "/backup restore-files 2024-05-01"),
                ("console:bob", "/dr deploy"),
                ("console:bob", "/dr sync back"),
                ("console:bob", "/dr failover"),
                ("console:bob", "/dr failback"),
                ("console:erin", "/security isolate workers"),
                ("console:erin", "/security breach-check"),
                ("console:alice", "/security enhanced-monitoring"),
                ("console:erin", "/security review admin"),
                ("console:alice", "/ops status-page"),
                (
                    "console:alice",
                    "/ops status-page --message \"We're back: all systems up (100%)\"",
                ),
                (
                    "console:alice",
                    "/ops status-page --message \"$(curl evil) `id`\"",
                ),
            ],
        ),
    ];
    for (profile, list) in cases {
        out.push(render_cases(&c, &cfg(), profile, list));
    }
    insta::assert_snapshot!(out.join("\n\n"));
}

/// One shipped command run against fresh stand-ins: the calls each remote
/// program recorded, in order, and the result.
async fn run(
    profile: &str,
    name: &str,
    a: &[(&str, &str)],
) -> (StandIns, Vec<(String, Call)>, Result<String, ExecError>) {
    let s = StandIns::new(&PROGRAMS.iter().map(|p| (*p, "ok\n")).collect::<Vec<_>>());
    s.add("app/scripts/deploy.sh", "deployed\n");
    let c = catalog(Some(&s));
    let cmd = c.get(profile, name).unwrap_or_else(|| panic!("{profile}:{name}"));
    let mut allow: Vec<&str> = PROGRAMS.to_vec();
    allow.push("./scripts/deploy.sh");
    let result = s
        .executor(&allow)
        .execute(&cmd.action, &c.targets, &args(a))
        .await
        .map(|o| o.text);
    // Each ssh call's remote command names its program first (after a `cd`
    // and `env`): read the programs' logs in the order ssh ran them.
    let mut seen: std::collections::BTreeMap<String, usize> = Default::default();
    let mut calls = Vec::new();
    for ssh in s.calls("ssh") {
        let remote = ssh.argv.last().cloned().unwrap_or_default();
        // The app directory's own scripts (`./scripts/deploy.sh`) are
        // stand-ins under `app/`.
        let program = match remote_program(&remote).strip_prefix("./") {
            Some(rel) => format!("app/{rel}"),
            None => remote_program(&remote),
        };
        let n = seen.entry(program.clone()).or_default();
        let call = s
            .calls(&program)
            .get(*n)
            .cloned()
            .expect("the remote program ran");
        *n += 1;
        calls.push((program, call));
    }
    (s, calls, result)
}

/// The program of a remote command line: the first quoted word after any
/// `IFS= read -r K && export K &&` (secrets read from stdin), `cd '…' &&`
/// and `'env' 'K=V' …`.
fn remote_program(line: &str) -> String {
    let mut line = line;
    while let Some((head, rest)) = line.split_once(" && ") {
        if !(head.starts_with("IFS= read -r ") || head.starts_with("export ") || head.starts_with("cd '")) {
            break;
        }
        line = rest;
    }
    let words: Vec<String> = line
        .split("' '")
        .map(|w| w.trim_matches('\'').to_string())
        .collect();
    let mut it = words.into_iter().peekable();
    if it.peek().map(String::as_str) == Some("env") {
        it.next();
        while it.peek().is_some_and(|w| w.contains('=')) {
            it.next();
        }
    }
    it.next().unwrap_or_default()
}

/// `(program, argv, in the app directory?)` of each expected call.
type Expected<'a> = &'a [(&'a str, &'a [&'a str], bool)];

async fn assert_runs(profile: &str, name: &str, a: &[(&str, &str)], expected: Expected<'_>) {
    let (s, calls, result) = run(profile, name, a).await;
    let app = s.path("app");
    let got: Vec<(String, Vec<String>, bool)> = calls
        .iter()
        .map(|(p, c)| (p.clone(), c.argv.clone(), c.cwd == app))
        .collect();
    let want: Vec<(String, Vec<String>, bool)> = expected
        .iter()
        .map(|(p, argv, cwd)| (p.to_string(), argv.iter().map(|x| x.to_string()).collect(), *cwd))
        .collect();
    assert_eq!(got, want, "{profile}:{name} {a:?} → {result:?}");
    let all_process = expected.len() == s.calls("ssh").len();
    assert!(all_process);
    if let Err(e) = &result {
        // Only seqs with an http step after the process steps fail here:
        // their http target is not listening.
        assert!(
            matches!(e, ExecError::Step { step, .. } if *step == expected.len() + 1),
            "{profile}:{name}: {e}"
        );
    }
}

const RESOURCES: Expected = &[
    ("df", &["-h"], false),
    ("free", &["-h"], false),
    ("ps", &["aux", "--sort=-%mem"], false),
    ("ps", &["aux", "--sort=-%cpu"], false),
    ("docker", &["stats", "--no-stream"], false),
];

#[tokio::test]
async fn queue_and_chat_app_host_commands_run_remotely_as_rendered() {
    for p in ["queue", "chat", "cap", "scrape"] {
        assert_runs(p, "ops resources", &[], RESOURCES).await;
    }
    assert_runs("queue", "ops procs", &[], &[("pm2", &["list"], false)]).await;
    assert_runs(
        "queue",
        "ops logs",
        &[("l", "app"), ("lines", "100")],
        &[("tail", &["-n", "100", "/var/log/app.log"], false)],
    )
    .await;
    assert_runs(
        "queue",
        "ops restart app",
        &[],
        &[("pm2", &["restart", "app", "--update-env"], false)],
    )
    .await;
    assert_runs("queue", "db migrate", &[], &[("npm", &["run", "db:push"], true)]).await;
    assert_runs(
        "chat",
        "ops logs",
        &[("l", "app"), ("lines", "7")],
        &[("tail", &["-n", "7", "/var/log/app.log"], false)],
    )
    .await;
    let restart: Expected = &[("docker-compose", &["restart", "app"], true)];
    assert_runs("chat", "ops restart app", &[], restart).await;
    assert_runs("chat", "ai rotate-keys", &[], restart).await;
    assert_runs("chat", "security rotate-keys", &[], restart).await;
    // A guided run: the step before the first confirmation, then it pauses.
    assert_runs(
        "chat",
        "dr db-failover",
        &[("standby", "db-standby-2")],
        &[("docker-compose", &["stop", "app"], true)],
    )
    .await;
    assert_runs(
        "chat",
        "security enhanced-monitoring",
        &[],
        &[("npm", &["run", "security:enhanced-monitoring"], true)],
    )
    .await;
}

#[tokio::test]
async fn cap_app_host_commands_run_remotely_as_rendered() {
    assert_runs("cap", "ops procs", &[], &[("pm2", &["status"], false)]).await;
    assert_runs(
        "cap",
        "ops logs",
        &[("l", "db"), ("lines", "100")],
        &[(
            "tail",
            &["-n", "100", "/var/log/postgresql/postgresql.log"],
            false,
        )],
    )
    .await;
    assert_runs(
        "cap",
        "ops trace",
        &[("corr", "-v")],
        &[(
            "grep",
            &["-r", "-h", "-F", "--include=*.log", "--", "-v", "/var/log/app"],
            false,
        )],
    )
    .await;
    let all: Expected = &[("pm2", &["restart", "all", "--update-env"], false)];
    assert_runs("cap", "ops restart app", &[], all).await;
    assert_runs("cap", "ops scale workers", &[("n", "15")], all).await;
    assert_runs(
        "cap",
        "ops restart workers",
        &[],
        &[("pm2", &["restart", "workers", "--update-env"], false)],
    )
    .await;
    assert_runs(
        "cap",
        "ops restart redis",
        &[],
        &[("sudo", &["-n", "systemctl", "restart", "redis"], false)],
    )
    .await;
    assert_runs(
        "cap",
        "ops prune",
        &[],
        &[
            ("docker", &["system", "prune", "-f"], false),
            ("npm", &["cache", "clean", "--force"], false),
        ],
    )
    .await;
    // The deploy script is the app directory's own (`./scripts/deploy.sh`).
    let (s, _, out) = run("cap", "deploy prepare", &[]).await;
    assert_eq!(out.unwrap(), "deployed\n");
    assert_eq!(s.only_call("app/scripts/deploy.sh"), ["prepare"]);
    let (s, _, _) = run("cap", "deploy start", &[]).await;
    let call = &s.calls("app/scripts/deploy.sh")[0];
    assert_eq!(
        call.argv,
        ["deploy", "--environment=production", "--health-checks"]
    );
    assert_eq!(call.cwd, s.path("app"));
}

#[tokio::test]
async fn the_worker_count_reaches_pm2_in_its_environment() {
    // A pm2 stand-in that prints the variable it was given.
    let s = StandIns::new(&[("pm2", "")]);
    std::fs::write(
        s.dir.path().join("bin/pm2"),
        "#!/bin/sh\necho \"WORKER_CONCURRENCY=$WORKER_CONCURRENCY $*\"\n",
    )
    .unwrap();
    let c = catalog(Some(&s));
    let cmd = c.get("cap", "ops scale workers").unwrap();
    let out = s
        .executor(&["pm2"])
        .execute(&cmd.action, &c.targets, &args(&[("n", "10")]))
        .await
        .unwrap();
    assert_eq!(out.text, "WORKER_CONCURRENCY=10 restart all --update-env\n");
}

#[tokio::test]
async fn the_status_message_reaches_the_script_in_its_environment_as_one_value() {
    let s = StandIns::new(&[("npm", "")]);
    std::fs::write(
        s.dir.path().join("bin/npm"),
        "#!/bin/sh\nprintf '%s|%s|%s' \"${STATUS_MESSAGE-unset}\" \"$*\" \"$PWD\"\n",
    )
    .unwrap();
    let c = catalog(Some(&s));
    let ex = s.executor(&["npm"]);
    let msg = "We're back: all (100%) & \"fine\" #1";
    let app = s.path("app");
    // pdf (seed 004's script) and scrape (the same script, runbooks.md OPS-43).
    for profile in ["pdf", "scrape"] {
        let cmd = c.get(profile, "ops status-page").unwrap();
        let out = ex
            .execute(&cmd.action, &c.targets, &args(&[("message", msg)]))
            .await
            .unwrap();
        assert_eq!(out.text, format!("{msg}|run status:update|{app}"), "{profile}");
        // Without --message the variable is not set at all.
        let out = ex.execute(&cmd.action, &c.targets, &args(&[])).await.unwrap();
        assert_eq!(out.text, format!("unset|run status:update|{app}"), "{profile}");
    }
}

#[tokio::test]
async fn scrape_app_host_commands_run_remotely_as_rendered() {
    assert_runs(
        "scrape",
        "ops procs",
        &[],
        &[("sudo", &["-n", "supervisorctl", "status"], false)],
    )
    .await;
    assert_runs(
        "scrape",
        "ops status-page",
        &[("message", "Degraded")],
        &[("npm", &["run", "status:update"], true)],
    )
    .await;
    assert_runs(
        "scrape",
        "ops logs",
        &[("l", "nginx"), ("lines", "3")],
        &[("tail", &["-n", "3", "/var/log/nginx/access.log"], false)],
    )
    .await;
    assert_runs(
        "scrape",
        "ops restart",
        &[("s", "frontend")],
        &[("sudo", &["-n", "supervisorctl", "restart", "frontend"], false)],
    )
    .await;
    for verb in ["stop", "start"] {
        assert_runs(
            "scrape",
            &format!("ops {verb}"),
            &[("s", "backend")],
            &[("sudo", &["-n", "supervisorctl", verb, "backend"], false)],
        )
        .await;
    }
    assert_runs(
        "scrape",
        "ops restart mongod",
        &[],
        &[("sudo", &["-n", "systemctl", "restart", "mongod"], false)],
    )
    .await;
    assert_runs(
        "scrape",
        "ops drop-caches",
        &[],
        &[
            ("sync", &[], false),
            ("sudo", &["-n", "sysctl", "vm.drop_caches=1"], false),
        ],
    )
    .await;
    assert_runs(
        "scrape",
        "ai selftest",
        &[],
        &[("python3", &["/opt/scripts/ai_selftest.py"], false)],
    )
    .await;
    assert_runs(
        "scrape",
        "ai keys",
        &[],
        &[("python3", &["/opt/scripts/ai_keycheck.py"], false)],
    )
    .await;
    assert_runs(
        "scrape",
        "ai reach",
        &[("h", "huggingface")],
        &[("ping", &["-c", "3", "huggingface.co"], false)],
    )
    .await;
    let restart: Expected = &[("sudo", &["-n", "supervisorctl", "restart", "backend"], false)];
    assert_runs("scrape", "ai rotate-keys", &[], restart).await;
    assert_runs("scrape", "security rotate-keys", &[], restart).await;
    assert_runs(
        "scrape",
        "backup list",
        &[],
        &[("ls", &["-la", "/backups/daily"], false)],
    )
    .await;
    assert_runs(
        "scrape",
        "security nginx-reload",
        &[],
        &[
            ("sudo", &["-n", "nginx", "-t"], false),
            ("sudo", &["-n", "nginx", "-s", "reload"], false),
        ],
    )
    .await;
}

/// A pdf command, its args and the `(program, argv)` of each call it makes.
type PdfCase = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<(&'static str, Vec<&'static str>)>,
);

#[tokio::test]
async fn pdf_app_host_commands_run_remotely_in_the_app_directory() {
    let npm = |script: &'static str| -> Vec<(&'static str, Vec<&'static str>)> {
        vec![("npm", vec!["run", script])]
    };
    let cases: Vec<PdfCase> = vec![
        (
            "ops health",
            vec![],
            [npm("monitoring:health"), npm("system:health-check")].concat(),
        ),
        (
            "ops status",
            vec![],
            [npm("monitoring:status"), vec![("supabase", vec!["status"])]].concat(),
        ),
        (
            "ops errors",
            vec![],
            [npm("monitoring:errors"), npm("monitoring:network")].concat(),
        ),
        ("ops perf", vec![("v", "watch")], npm("monitoring:watch")),
        (
            "ops export",
            vec![],
            vec![("npm", vec!["run", "monitoring:export", "--"])],
        ),
        (
            "ops export",
            vec![("period", "24h")],
            vec![("npm", vec!["run", "monitoring:export", "--", "--period=24h"])],
        ),
        (
            "ops fn-logs",
            vec![("fn", "auth")],
            vec![("supabase", vec!["functions", "logs", "auth"])],
        ),
        (
            "ops scale web",
            vec![("n", "4")],
            vec![("docker-compose", vec!["up", "-d", "--scale", "web=4"])],
        ),
        (
            "ops scale pdf-workers",
            vec![("n", "8")],
            vec![("npm", vec!["run", "workers:scale", "--", "--count=8"])],
        ),
        (
            "ops maintenance check",
            vec![("w", "test")],
            npm("maintenance:test"),
        ),
        (
            "queue failed",
            vec![("limit", "10")],
            vec![("npm", vec!["run", "queue:failed", "--", "--limit=10"])],
        ),
        ("db integrity", vec![], npm("db:integrity-check")),
        (
            "db inspect",
            vec![],
            vec![
                ("supabase", vec!["db", "inspect", "--performance"]),
                ("supabase", vec!["db", "logs", "--level=slow"]),
            ],
        ),
        ("db pool-optimize", vec![], npm("db:optimize-pool")),
        (
            "db upgrade",
            vec![("size", "medium")],
            vec![("supabase", vec!["db", "upgrade", "--instance-size", "medium"])],
        ),
        (
            "db replica-create",
            vec![("region", "us-east-1")],
            [
                vec![(
                    "supabase",
                    vec!["db", "replica", "create", "--region", "us-east-1"],
                )],
                npm("db:configure-reads"),
            ]
            .concat(),
        ),
        (
            "deploy hotfix",
            vec![("branch", "fix-1")],
            [
                vec![("git", vec!["checkout", "hotfix/fix-1"])],
                npm("deploy:hotfix"),
            ]
            .concat(),
        ),
        (
            "deploy fn",
            vec![("fn", "process-pdf"), ("memory", "2048")],
            vec![(
                "supabase",
                vec!["functions", "deploy", "process-pdf", "--memory=2048"],
            )],
        ),
        (
            "storage ls",
            vec![],
            vec![("supabase", vec!["storage", "ls", "pdf-processing"])],
        ),
        (
            "storage usage",
            vec![],
            [
                vec![("supabase", vec!["storage", "du"])],
                npm("storage:quota-check"),
            ]
            .concat(),
        ),
        ("storage test", vec![("w", "upload")], npm("test:storage")),
        ("storage test", vec![("w", "health")], npm("test:storage-health")),
        (
            "storage logs",
            vec![],
            vec![("supabase", vec!["storage", "logs"])],
        ),
        ("storage optimize", vec![], npm("storage:optimize")),
        ("backup run", vec![], npm("backup:database")),
        (
            "backup verify",
            vec![("date", "yesterday")],
            vec![("npm", vec!["run", "backup:verify", "--", "--date=yesterday"])],
        ),
        ("backup storage", vec![], npm("backup:storage")),
        (
            "backup restore-files",
            vec![("bucket", "pdf-processing"), ("date", "2024-05-01")],
            vec![(
                "npm",
                vec![
                    "run",
                    "restore:files",
                    "--",
                    "--bucket=pdf-processing",
                    "--date=2024-05-01",
                ],
            )],
        ),
        ("dr deploy", vec![], npm("deploy:disaster-recovery")),
        ("dr sync", vec![("d", "to-dr")], npm("dr:sync-data")),
        ("dr sync", vec![("d", "back")], npm("dr:sync-back")),
        ("dr failover", vec![], npm("dr:failover")),
        (
            "dr failback",
            vec![],
            [npm("dr:failback"), npm("system:health-check")].concat(),
        ),
        (
            "security isolate",
            vec![("c", "workers")],
            vec![(
                "npm",
                vec!["run", "security:isolate", "--", "--component=workers"],
            )],
        ),
        ("security breach-check", vec![], npm("security:breach-check")),
        (
            "security enhanced-monitoring",
            vec![],
            npm("security:enhanced-monitoring"),
        ),
        ("security review", vec![("k", "api")], npm("security:api-audit")),
    ];
    for (name, a, calls) in &cases {
        let expected: Vec<(&str, &[&str], bool)> =
            calls.iter().map(|(p, v)| (*p, v.as_slice(), true)).collect();
        assert_runs("pdf", name, a, &expected).await;
    }
    // The log tail is the one pdf command outside the app directory.
    assert_runs(
        "pdf",
        "ops logs",
        &[("l", "app"), ("lines", "30")],
        &[("tail", &["-n", "30", "/var/log/application.log"], false)],
    )
    .await;
}

/// Every process action of the shipped catalog, with its command's name.
fn processes(c: &Catalog) -> Vec<(String, &ProcessAction)> {
    c.commands
        .iter()
        .flat_map(|cmd| {
            cmd.action.leaves().into_iter().filter_map(move |a| match a {
                Action::Process(p) => Some((format!("{}:{}", cmd.profile, cmd.name), p)),
                _ => None,
            })
        })
        .collect()
}

/// Whether the bot summarizes the output of `a` (or of one of its steps).
fn summarizes(a: &Action) -> bool {
    match a {
        Action::Summarize(_) => true,
        Action::Seq(seq) => seq.all().any(|s| summarizes(&s.action)),
        _ => false,
    }
}

#[test]
fn safety_rewrites_of_seed_practice_hold_for_every_process_action() {
    let c = catalog(None);
    let all = processes(&c);
    assert!(all.len() > 60, "{}", all.len());
    for (name, p) in &all {
        let argv: Vec<&str> = p.argv.iter().map(String::as_str).collect();
        match argv.as_slice() {
            // Bounded `tail -n` (at most 500 lines), never `tail -f`; a tail
            // the bot only summarizes (never shown whole) reads a fixed
            // count of at most 5000 lines (runbooks.md AI-7, SEC-1).
            ["tail", "-n", n, _file] => {
                let arg = n.trim_matches(['{', '}']);
                let spec = c
                    .commands
                    .iter()
                    .find(|x| format!("{}:{}", x.profile, x.name) == *name)
                    .unwrap();
                if let Ok(fixed) = n.parse::<u32>() {
                    assert!(
                        summarizes(&spec.action) && fixed <= 5000,
                        "{name}: tail -n {fixed}"
                    );
                    continue;
                }
                match &spec.arg(arg).expect("tail's line count is an argument").kind {
                    opsbot::catalog::ArgKind::Int { max, .. } => assert!(*max <= 500, "{name}"),
                    other => panic!("{name}: tail -n takes {other:?}"),
                }
            }
            ["tail", ..] => panic!("{name}: tail must be `tail -n <int ≤ 500> <file>`: {argv:?}"),
            // `--update-env` on pm2 restarts (a plain restart keeps the old env).
            ["pm2", "restart", ..] => assert!(argv.contains(&"--update-env"), "{name}: {argv:?}"),
            // docker-compose up detached (the seed's form would block).
            ["docker-compose", "up", ..] => assert!(argv.contains(&"-d"), "{name}"),
            // npm script flags after `--` (otherwise npm eats them).
            ["npm", "run", _script, rest @ ..] => {
                if let Some(first) = rest.first() {
                    assert_eq!(*first, "--", "{name}: {argv:?}");
                }
            }
            // sudo never waits for a password.
            ["sudo", rest @ ..] => assert_eq!(rest.first(), Some(&"-n"), "{name}"),
            // Interactive or unbounded tools are not offered.
            [prog, ..] => assert!(
                !["top", "htop", "iotop", "watch", "redis-cli"].contains(prog),
                "{name}: {prog}"
            ),
            [] => unreachable!(),
        }
        for el in &argv {
            assert!(
                !matches!(*el, "-f" | "--follow" | "-F") || argv[0] != "tail",
                "{name}"
            );
        }
    }
}

#[test]
fn every_shipped_app_host_profile_names_its_host_and_runs_there() {
    let c = catalog(None);
    for (name, p) in processes(&c) {
        let host = p
            .place
            .host
            .as_ref()
            .unwrap_or_else(|| panic!("{name} runs on the bot's host"));
        assert_eq!(host.user, "opsbot", "{name}");
        assert_eq!(host.host, format!("{}-app.internal", p.place.profile), "{name}");
    }
    // OPSBOT_HOST_<P>=local brings a profile's actions to the bot's host.
    let local = shipped_catalog_env(&cfg(), &[("OPSBOT_HOST_CAP", "local")]);
    let cmd = local.get("cap", "ops procs").unwrap();
    let r = opsbot::exec::render(&cmd.action, &local.targets, &args(&[])).unwrap();
    assert_eq!(r.to_string(), r#"process: ["pm2", "status"]"#);
}
