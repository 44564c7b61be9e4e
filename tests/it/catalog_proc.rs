//! Process rows that need a secret in the environment or a name generated
//! per run (issue #17): cap BK-1 and BK-4 (pg_dump, createdb, pg_restore,
//! psql, dropdb with cap_db's DSN as PG* variables), scrape M-1, M-2, M-4,
//! M-6, M-7, M-8 (mongosh with a fixed script and the URL in its env) and
//! scrape BK-1 (mongodump into `{backup.dir}/{run.ts}`, then tar), and
//! SEC-3 of chat and scrape (`sudo ufw` with an `ip` argument). Each is
//! parsed, authorized and rendered (one snapshot, injection attempts
//! included), then run on the app host through the ssh stand-in: the
//! programs record their argv and environment, and the password is in the
//! environment only.

use crate::support::{args, config_enabling_each, owned, render_cases, shipped_catalog_env, StandIns};
use opsbot::catalog::Catalog;
use opsbot::clock::ManualClock;
use opsbot::config::Config;
use std::sync::Arc;

const PG_PASSWORD: &str = "pg-Secret-991";
const MONGO_PASSWORD: &str = "mongo-Secret-772";
/// 2023-11-14T22:13:20Z: the clock of process runs here and in `catalog_procpreview`.
pub const NOW_MS: i64 = 1_700_000_000_000;
/// `{run.ts}` at [`NOW_MS`].
pub const TS: &str = "20231114T221320Z";

fn cfg() -> Config {
    config_enabling_each(
        "[people.erin]\nconsole = \"erin\"\nroles = [\"tech-lead\", \"dba\", \"security\"]\n",
        &["cap", "scrape", "chat"],
    )
}

fn catalog() -> Catalog {
    shipped_catalog_env(
        &cfg(),
        &[
            (
                "OPSBOT_TARGET_CAP_DB",
                &format!("postgres://cap:{PG_PASSWORD}@cap-db.internal:5433/competitive_analysis"),
            ),
            (
                "OPSBOT_TARGET_SCRAPE_MONGO",
                &format!("mongodb://scraper:{MONGO_PASSWORD}@mongo.internal:27017/production_scraping_db"),
            ),
        ],
    )
}

#[test]
fn every_env_secret_command_parses_authorizes_and_renders() {
    let c = catalog();
    let cap: &[(&str, &str)] = &[
        ("console:alice", "/backup run"),
        ("console:alice", "/backup verify"),
        ("console:alice", "/backup verify --date 2026-01-01"),
        ("console:dave", "/backup run"),
    ];
    let scrape: &[(&str, &str)] = &[
        ("console:alice", "/db mongo status"),
        ("console:alice", "/db mongo ops"),
        ("console:alice", "/db mongo ops --min-secs 60"),
        (
            "console:alice",
            "/db mongo ops --min-secs \"1}); db.dropDatabase(); ({\"",
        ),
        ("console:alice", "/db mongo slow --limit 5"),
        ("console:alice", "/db mongo slow --limit 5;db.dropDatabase()"),
        ("console:alice", "/db mongo index-stats"),
        ("console:erin", "/db mongo reindex scraping_jobs"),
        (
            "console:erin",
            "/db mongo reindex \"scraping_jobs'); db.dropDatabase(); ('\"",
        ),
        ("console:alice", "/db mongo reindex scraping_jobs"),
        ("console:dave", "/db mongo counts"),
        ("console:alice", "/backup run"),
    ];
    let ip: &[(&str, &str)] = &[
        ("console:bob", "/security block-ip 198.51.100.7"),
        ("console:bob", "/security unblock-ip 2001:0DB8:0002::0007"),
        ("console:erin", "/security block-ip ::ffff:8.8.4.4"),
        ("console:alice", "/security block-ip 198.51.100.7"),
        ("console:bob", "/security block-ip 10.0.0.5"),
        ("console:bob", "/security block-ip 127.0.0.1"),
        ("console:bob", "/security block-ip 169.254.169.254"),
        ("console:bob", "/security block-ip fd00::1"),
        ("console:bob", "/security block-ip 198.51.100.7/32"),
        ("console:bob", "/security block-ip 198.51.100.7:443"),
        ("console:bob", "/security block-ip \"198.51.100.7; ufw disable\""),
        ("console:bob", "/security block-ip \"198.51.100.7' 'to' 'any\""),
        ("console:bob", "/security block-ip --help"),
        ("console:bob", "/security block-ip \"$(reboot)\""),
    ];
    let out = [
        render_cases(&c, &cfg(), "cap", cap),
        render_cases(&c, &cfg(), "scrape", scrape),
        render_cases(&c, &cfg(), "scrape", ip),
        render_cases(&c, &cfg(), "chat", &ip[..2]),
    ];
    let text = out.join("\n\n");
    for s in [PG_PASSWORD, MONGO_PASSWORD] {
        assert!(!text.contains(s), "a rendering shows a password");
    }
    insta::assert_snapshot!(text);
}

const PROGRAMS: &[&str] = &[
    "sudo",
    "pg_dump",
    "ln",
    "createdb",
    "pg_restore",
    "psql",
    "dropdb",
    "mongosh",
    "mongodump",
    "tar",
];

/// Runs `profile:name` on the app host through the stand-ins.
async fn run(profile: &str, name: &str, a: &[(&str, &str)]) -> (StandIns, Result<String, String>) {
    run_with(profile, name, a, |_| {}).await
}

/// [`run`] with the stand-ins changed by `tweak` first (one made to fail).
async fn run_with(
    profile: &str,
    name: &str,
    a: &[(&str, &str)],
    tweak: impl FnOnce(&StandIns),
) -> (StandIns, Result<String, String>) {
    let s = StandIns::new(&PROGRAMS.iter().map(|p| (*p, "ok\n")).collect::<Vec<_>>());
    tweak(&s);
    let c = catalog();
    let cmd = c.get(profile, name).unwrap_or_else(|| panic!("{profile}:{name}"));
    let out = s
        .executor(PROGRAMS)
        .with_clock(Arc::new(ManualClock::new(NOW_MS)))
        .execute(&cmd.action, &c.targets, &args(a))
        .await
        .map(|o| o.text)
        .map_err(|e| e.to_string());
    for ssh in s.calls("ssh") {
        let line = ssh.argv.join(" ");
        assert!(
            !line.contains(PG_PASSWORD) && !line.contains(MONGO_PASSWORD),
            "a password on ssh's argv: {line}"
        );
    }
    (s, out)
}

#[tokio::test]
async fn cap_backup_run_dumps_with_the_dsn_in_pg_variables_and_links_the_latest() {
    let (s, out) = run("cap", "backup run", &[]).await;
    out.expect("runs");
    let file = format!("/backups/competitive-analysis/db_backup_{TS}.dump");
    assert_eq!(
        s.only_call("pg_dump"),
        owned(&["--format=custom", &format!("--file={file}")])
    );
    let env = &s.envs("pg_dump")[0];
    let pg: Vec<(&str, &str)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("PG"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pg,
        vec![
            ("PGDATABASE", "competitive_analysis"),
            ("PGHOST", "cap-db.internal"),
            ("PGPASSWORD", PG_PASSWORD),
            ("PGPORT", "5433"),
            ("PGUSER", "cap"),
        ]
    );
    assert_eq!(
        s.only_call("ln"),
        owned(&[
            "-sfn",
            &format!("db_backup_{TS}.dump"),
            "/backups/competitive-analysis/db_backup_latest.dump"
        ])
    );
    assert!(!s.envs("ln")[0].contains_key("PGPASSWORD"), "ln gets no secret");
}

#[tokio::test]
async fn cap_backup_verify_restores_counts_and_drops_one_database_named_once() {
    let (s, out) = run("cap", "backup verify", &[]).await;
    out.expect("runs");
    let db = format!("test_restore_{TS}");
    assert_eq!(s.only_call("createdb"), owned(&[&db]));
    assert_eq!(
        s.only_call("pg_restore"),
        owned(&[
            "--no-owner",
            &format!("--dbname={db}"),
            "/backups/competitive-analysis/db_backup_latest.dump"
        ])
    );
    let psql = s.only_call("psql");
    assert!(psql.contains(&format!("--dbname={db}")), "{psql:?}");
    assert_eq!(s.only_call("dropdb"), owned(&["--if-exists", &db]));
    for p in ["createdb", "pg_restore", "psql", "dropdb"] {
        let env = &s.envs(p)[0];
        assert_eq!(
            env.get("PGPASSWORD").map(String::as_str),
            Some(PG_PASSWORD),
            "{p}"
        );
        assert!(!env.contains_key("PGDATABASE"), "{p} names its database in argv");
    }
}

#[tokio::test]
async fn cap_backup_verify_drops_its_database_after_a_failed_restore_too() {
    let (s, out) = run_with("cap", "backup verify", &[], |s| {
        s.add_failing("pg_restore", "pg_restore: error: input file is too short\n")
    })
    .await;
    let text = out.expect_err("the restore fails");
    let db = format!("test_restore_{TS}");
    assert!(s.calls("psql").is_empty(), "the count did not run");
    assert_eq!(
        s.only_call("dropdb"),
        owned(&["--if-exists", &db]),
        "the scratch database is dropped"
    );
    assert!(
        text.starts_with("step 2 of 3 failed; step 3 did not run; 1 of 1 finally step succeeded\n"),
        "{text}"
    );
    assert!(text.contains("input file is too short"), "{text}");
    assert!(text.contains("\n✓ finally 1/1 exit 0 in "), "{text}");
    assert!(!text.contains(PG_PASSWORD), "{text}");
}

#[tokio::test]
async fn mongosh_gets_the_url_in_its_env_and_typed_values_beside_a_fixed_script() {
    let (s, out) = run("scrape", "db mongo ops", &[("min-secs", "60")]).await;
    out.expect("runs");
    let argv = s.only_call("mongosh");
    assert_eq!(&argv[..3], &owned(&["--nodb", "--quiet", "--eval"])[..]);
    let script = &argv[3];
    assert!(
        script.starts_with("const d = connect(process.env.OPSBOT_MONGO_URL);"),
        "{script}"
    );
    assert!(!script.contains("60"), "the value is not in the script: {script}");
    let env = &s.envs("mongosh")[0];
    assert_eq!(env.get("OPSBOT_MIN_SECS").map(String::as_str), Some("60"));
    assert_eq!(
        env.get("OPSBOT_MONGO_URL").cloned(),
        Some(format!(
            "mongodb://scraper:{MONGO_PASSWORD}@mongo.internal:27017/production_scraping_db"
        ))
    );

    // The same script whatever the value: only the environment differs.
    let (s2, out) = run("scrape", "db mongo ops", &[("min-secs", "0")]).await;
    out.expect("runs");
    assert_eq!(s2.only_call("mongosh"), argv);

    for (name, a) in [
        ("db mongo status", vec![]),
        ("db mongo slow", vec![("limit", "5")]),
        ("db mongo index-stats", vec![]),
        ("db mongo reindex", vec![("c", "scraping_jobs")]),
        ("db mongo counts", vec![]),
    ] {
        let (s, out) = run("scrape", name, &a).await;
        out.unwrap_or_else(|e| panic!("{name}: {e}"));
        let env = &s.envs("mongosh")[0];
        assert!(
            env.get("OPSBOT_MONGO_URL")
                .is_some_and(|u| u.contains(MONGO_PASSWORD)),
            "{name}"
        );
        for (k, v) in &a {
            let key = format!(
                "OPSBOT_{}",
                if *k == "c" {
                    "COLLECTION".into()
                } else {
                    k.to_uppercase()
                }
            );
            assert_eq!(env.get(&key).map(String::as_str), Some(*v), "{name}");
        }
    }
}

#[tokio::test]
async fn scrape_backup_run_dumps_into_the_runs_directory_then_archives_it() {
    let (s, out) = run("scrape", "backup run", &[]).await;
    out.expect("runs");
    assert_eq!(
        s.only_call("mongodump"),
        owned(&[
            "--db",
            "production_scraping_db",
            "--out",
            &format!("/backups/daily/{TS}")
        ])
    );
    assert_eq!(
        s.only_call("tar"),
        owned(&[
            "-czf",
            &format!("/backups/daily/{TS}.tar.gz"),
            "-C",
            "/backups/daily",
            TS
        ])
    );
}

#[tokio::test]
async fn block_ip_runs_ufw_with_the_canonical_address_on_chat_and_scrape() {
    for p in ["chat", "scrape"] {
        let (s, out) = run(p, "security block-ip", &[("ip", "2001:db8:2::7")]).await;
        out.expect("runs");
        assert_eq!(
            s.only_call("sudo"),
            owned(&["-n", "ufw", "deny", "from", "2001:db8:2::7"]),
            "{p}"
        );
        let (s, out) = run(p, "security unblock-ip", &[("ip", "198.51.100.7")]).await;
        out.expect("runs");
        assert_eq!(
            s.only_call("sudo"),
            owned(&["-n", "ufw", "delete", "deny", "from", "198.51.100.7"]),
            "{p}"
        );
    }
}

#[test]
fn protected_ranges_come_from_the_catalog_and_bad_ranges_are_check_problems() {
    let text = r#"
[command.chat."security block-ip"]
summary = "x"
args = { ip = { kind = "ip", protected = ["198.51.100.0/24", "10.0.0.0/40"] } }
risk = "write"
roles = ["sre"]
action = { process = { argv = ["sudo", "-n", "ufw", "deny", "from", "{ip}"] } }
"#;
    let roles = ["sre".to_string()].into_iter().collect();
    let env = std::collections::HashMap::new();
    let ctx = opsbot::catalog::Context {
        roles: &roles,
        env: &env,
    };
    let err = opsbot::catalog::load_str("x.toml", text, &ctx).expect_err("bad range");
    let msgs: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        msgs,
        vec![
            "x.toml:4: argument `ip`: protected: `10.0.0.0/40`: the prefix length must be 0 to 32"
                .to_string(),
            "x.toml:7: template `{ip}` uses `{ip}`, which is not a defined argument".to_string(),
        ]
    );
    let c =
        opsbot::catalog::load_str("x.toml", &text.replace(", \"10.0.0.0/40\"", ""), &ctx).expect("catalog");
    let cfg = cfg();
    let out = render_cases(
        &c,
        &cfg,
        "chat",
        &[("console:bob", "/security block-ip 198.51.100.9")],
    );
    assert!(
        out.ends_with("usage error: ip `198.51.100.9` is in the protected range 198.51.100.0/24 (the catalog never blocks it: offices, monitoring, our own hosts).\\nUsage: `/security block-ip <ip:ip>`"),
        "{out}"
    );
}
