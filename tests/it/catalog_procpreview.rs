//! Process previews (issue #17): queue and cap OPS-37 and cap and scrape
//! BK-5 (`find -print` of a configured directory, then `find` handed only
//! the previewed files that still match), scrape M-5 (opids through a
//! mongosh process), M-9 and M-10 (a count and one cutoff, checked again
//! before the delete), scrape BK-7 (the backup's time, size and target, a
//! pre-restore dump first), pdf BK-7 (the dated dumps of `{backup.dir}`,
//! a fresh backup first), pdf ST-5 (D-25's orphans handed to `npm run
//! storage:cleanup`) and scrape S-7 (one stop per previewed job, `each`). Each is parsed, authorized and rendered (one snapshot,
//! injection attempts included), then run on the app host through the ssh
//! stand-in, whose `sh -c` reads the remote command as sshd's shell would;
//! OPS-37 also through the pipeline on both store backends.

use crate::catalog_proc::{NOW_MS, TS};
use crate::support::{
    args, both, bound, clock, config_enabling_each, owned, pipeline_for, render_sections, requests, say,
    shipped_catalog_env, FakeApi, PgDatabase, StandIns,
};
use opsbot::approval::State;
use opsbot::catalog::Catalog;
use opsbot::clock::ManualClock;
use opsbot::config::Config;
use opsbot::engine::Outcome;
use opsbot::exec::Executor;
use opsbot::preview::Previewed;
use serde_json::json;
use std::sync::Arc;

const MONGO_PASSWORD: &str = "mongo-Secret-4411";

fn cfg() -> Config {
    config_enabling_each(
        "[people.erin]\nconsole = \"erin\"\nroles = [\"sre\", \"dba\"]\n",
        &["cap", "scrape", "pdf"],
    )
}

fn catalog() -> Catalog {
    shipped_catalog_env(
        &cfg(),
        &[(
            "OPSBOT_TARGET_SCRAPE_MONGO",
            &format!("mongodb://scraper:{MONGO_PASSWORD}@mongo.internal:27017/production_scraping_db"),
        )],
    )
}

#[test]
fn every_process_preview_command_parses_authorizes_and_renders() {
    let c = catalog();
    let queue: &[(&str, &str)] = &[
        ("console:bob", "/ops logs-prune"),
        ("console:bob", "/ops logs-prune --days 90"),
        ("console:bob", "/ops logs-prune --days 3"),
        ("console:bob", "/ops logs-prune --days \"30 -o -name *\""),
        ("console:alice", "/ops logs-prune"),
    ];
    let cap: &[(&str, &str)] = &[
        ("console:bob", "/ops logs-prune --days 14"),
        ("console:bob", "/backup prune"),
        ("console:bob", "/backup prune --keep-days \"1; rm -rf /\""),
        ("console:alice", "/backup prune"),
    ];
    let scrape: &[(&str, &str)] = &[
        ("console:alice", "/db mongo kill-long"),
        ("console:alice", "/db mongo kill-long --min-secs 5"),
        (
            "console:alice",
            "/db mongo kill-long --min-secs \"60}); db.dropDatabase(); ({\"",
        ),
        ("console:erin", "/db mongo cleanup-jobs --days 90"),
        ("console:alice", "/db mongo cleanup-jobs"),
        ("console:erin", "/db mongo archive-raw"),
        ("console:erin", "/db mongo archive-raw --days 7"),
        ("console:bob", "/backup prune --keep-days 14"),
        ("console:erin", "/backup restore 20261201T041500Z"),
        ("console:erin", "/backup restore ../../etc"),
        ("console:erin", "/backup restore \"1'; rm -rf /\""),
        ("console:erin", "/backup restore *"),
        ("console:bob", "/backup restore 20261201T041500Z"),
        ("console:alice", "/scrape stop-all"),
        ("console:dave", "/scrape stop-all"),
    ];
    let pdf: &[(&str, &str)] = &[
        ("console:alice", "/storage cleanup"),
        ("console:dave", "/storage cleanup"),
        ("console:erin", "/backup restore 2026-12-01"),
        ("console:erin", "/backup restore 2026-12-01*"),
        ("console:erin", "/backup restore ../*-12-01"),
        ("console:erin", "/backup restore \"2026-12-01; rm -rf /\""),
        ("console:bob", "/backup restore 2026-12-01"),
    ];
    let text = render_sections(
        &c,
        &cfg(),
        &[("queue", queue), ("cap", cap), ("scrape", scrape), ("pdf", pdf)],
    );
    assert!(!text.contains(MONGO_PASSWORD), "a rendering shows a password");
    insta::assert_snapshot!(text);
}

const PROGRAMS: &[&str] = &["find", "mongosh", "mongodump", "mongorestore", "tar", "npm"];

fn executor(s: &StandIns) -> Executor {
    s.executor(PROGRAMS)
        .with_clock(Arc::new(ManualClock::new(NOW_MS)))
}

/// `profile:name`'s preview with `a`, through the stand-ins.
async fn preview(s: &StandIns, c: &Catalog, profile: &str, name: &str, a: &[(&str, &str)]) -> Previewed {
    let cmd = c.get(profile, name).unwrap_or_else(|| panic!("{profile}:{name}"));
    executor(s)
        .preview(cmd.preview.as_ref().expect("a preview"), &c.targets, &args(a))
        .await
        .expect("the preview runs")
}

/// `profile:name` run with what its preview found.
async fn execute(
    s: &StandIns,
    c: &Catalog,
    profile: &str,
    name: &str,
    a: &[(&str, &str)],
    found: &Previewed,
) -> Result<opsbot::exec::ExecOutput, String> {
    let cmd = c.get(profile, name).unwrap();
    let out = executor(s)
        .execute_previewed(&cmd.action, &c.targets, &args(a), bound(cmd, found))
        .await
        .map_err(|e| e.to_string());
    for ssh in s.calls("ssh") {
        assert!(
            !ssh.argv.join(" ").contains(MONGO_PASSWORD),
            "a password on ssh's argv: {:?}",
            ssh.argv
        );
    }
    out
}

/// `out` reports `touched` of `previewed` items touched, the rest untouched.
fn assert_touched(out: &opsbot::exec::ExecOutput, touched: usize, previewed: usize, what: &str) {
    let skipped = previewed - touched;
    let tail = format!(
        "{touched} of {previewed} previewed {what} touched · {skipped} no longer matched (untouched)"
    );
    assert!(out.summary.ends_with(&tail), "{}", out.summary);
    assert_eq!(out.fields["skipped"], skipped, "{}", out.summary);
}

/// `profile:name` previewed, then run with what it found (nothing changed between).
async fn preview_and_run(
    s: &StandIns,
    c: &Catalog,
    profile: &str,
    name: &str,
    a: &[(&str, &str)],
) -> (Previewed, Result<opsbot::exec::ExecOutput, String>) {
    let found = preview(s, c, profile, name, a).await;
    let out = execute(s, c, profile, name, a, &found).await;
    (found, out)
}

#[tokio::test]
async fn logs_prune_lists_the_files_then_deletes_only_the_previewed_ones_still_found() {
    let s = StandIns::new(&[(
        "find",
        "/var/log/queue/a.log\n/var/log/queue/b.log\n\n/var/log/queue/c.log\n",
    )]);
    let c = catalog();
    let found = preview(&s, &c, "queue", "ops logs-prune", &[("days", "30")]).await;
    assert_eq!((found.count, found.complete), (3, true));
    assert_eq!(
        found.line(),
        "3 log files (/var/log/queue/a.log, /var/log/queue/b.log, /var/log/queue/c.log)"
    );
    assert_eq!(
        s.only_call("find"),
        owned(&[
            "/var/log/queue",
            "-type",
            "f",
            "-name",
            "*.log",
            "-mtime",
            "+30",
            "-print"
        ])
    );
    // By execution b.log is gone and new.log appeared.
    s.add(
        "find",
        "/var/log/queue/a.log\n/var/log/queue/c.log\n/var/log/queue/new.log\n",
    );
    let out = execute(&s, &c, "queue", "ops logs-prune", &[("days", "30")], &found)
        .await
        .expect("runs");
    assert_touched(&out, 2, 3, "log files");
    let calls = s.calls("find");
    assert_eq!(
        calls.len(),
        3,
        "preview, the preview again, the action: {calls:?}"
    );
    assert_eq!(calls[1].argv, calls[0].argv);
    assert_eq!(
        calls[2].argv,
        owned(&[
            "/var/log/queue/a.log",
            "/var/log/queue/c.log",
            "-maxdepth",
            "0",
            "-type",
            "f",
            "-name",
            "*.log",
            "-mtime",
            "+30",
            "-print",
            "-delete"
        ])
    );
    let ssh = s.calls("ssh");
    assert!(
        ssh[2]
            .argv
            .last()
            .unwrap()
            .starts_with("'find' '/var/log/queue/a.log' '/var/log/queue/c.log' '-maxdepth'"),
        "{:?}",
        ssh[2].argv
    );

    // None of them is found any more: the action does not run.
    s.add("find", "/var/log/queue/new.log\n");
    let out = execute(&s, &c, "queue", "ops logs-prune", &[("days", "30")], &found)
        .await
        .expect("runs");
    assert_eq!(
        out.summary,
        "nothing run · 0 of 3 previewed log files touched · 3 no longer matched (untouched)"
    );
    assert_eq!(s.calls("find").len(), 4, "only the preview ran again");
}

#[tokio::test]
async fn a_previewed_file_name_stays_one_operand_through_the_remote_shell() {
    let hostile = "/var/log/app/x'; touch /tmp/pwned; echo '$(reboot).log";
    let s = StandIns::new(&[("find", &format!("{hostile}\n/var/log/app/ok.log\n"))]);
    let c = catalog();
    let (found, out) = preview_and_run(&s, &c, "cap", "ops logs-prune", &[("days", "30")]).await;
    out.expect("runs");
    assert_eq!(
        found.items.as_deref(),
        Some(&[hostile.to_string(), "/var/log/app/ok.log".into()][..])
    );
    let action = &s.calls("find")[2].argv;
    assert_eq!(action[..2], [hostile.to_string(), "/var/log/app/ok.log".into()]);
    assert_eq!(action.len(), 12, "{action:?}");

    // A line that a program would read as an option or an operator is refused.
    for line in ["-delete", "-exec", "!", "(", ")"] {
        s.add("find", &format!("{line}\n/var/log/app/ok.log\n"));
        let before = s.calls("find").len();
        let (_, out) = preview_and_run(&s, &c, "cap", "ops logs-prune", &[("days", "30")]).await;
        let e = out.unwrap_err();
        assert!(
            e.starts_with(&format!("previewed item `{line}` refused:")),
            "{line}: {e}"
        );
        assert_eq!(
            s.calls("find").len(),
            before + 2,
            "the preview, then only it again"
        );
    }
}

#[tokio::test]
async fn backup_prune_binds_the_backup_files_of_each_profile() {
    let s = StandIns::new(&[(
        "find",
        "/backups/competitive-analysis/db_backup_20231001T000000Z.dump\n",
    )]);
    let c = catalog();
    let (found, out) = preview_and_run(&s, &c, "cap", "backup prune", &[("keep-days", "30")]).await;
    out.expect("runs");
    assert_eq!(found.count, 1);
    let calls = s.calls("find");
    assert_eq!(
        calls[0].argv,
        owned(&[
            "/backups/competitive-analysis",
            "-maxdepth",
            "1",
            "-type",
            "f",
            "-name",
            "db_backup_*.dump",
            "-mtime",
            "+30",
            "-print"
        ])
    );
    assert_eq!(
        calls[2].argv[0],
        "/backups/competitive-analysis/db_backup_20231001T000000Z.dump"
    );
    assert_eq!(calls[2].argv.last().unwrap(), "-delete");

    let s = StandIns::new(&[("find", "/backups/daily/20231101T000000Z.tar.gz\n")]);
    let (_, out) = preview_and_run(&s, &c, "scrape", "backup prune", &[("keep-days", "7")]).await;
    out.expect("runs");
    let calls = s.calls("find");
    assert!(
        calls[0].argv.contains(&"*.tar.gz".to_string()),
        "{:?}",
        calls[0].argv
    );
    assert_eq!(
        calls[2].argv[..4],
        owned(&[
            "/backups/daily/20231101T000000Z.tar.gz",
            "-maxdepth",
            "0",
            "-type"
        ])
    );
}

#[tokio::test]
async fn kill_long_kills_only_previewed_opids_still_running() {
    let s = StandIns::new(&[(
        "mongosh",
        "101\t75\tquery\tproduction_scraping_db.scraping_jobs\n202\t300\tupdate\tproduction_scraping_db.raw_extracted_questions\n",
    )]);
    let c = catalog();
    let a = [("min-secs", "60")];
    let found = preview(&s, &c, "scrape", "db mongo kill-long", &a).await;
    assert_eq!(
        found.items.as_deref(),
        Some(&["101".to_string(), "202".into()][..])
    );
    assert_eq!(
        found.samples[0],
        "opid 101 · secs 75 · op query · ns production_scraping_db.scraping_jobs"
    );
    s.add(
        "mongosh",
        "202\t301\tupdate\tproduction_scraping_db.raw_extracted_questions\n303\t90\tquery\tx.y\n",
    );
    let out = execute(&s, &c, "scrape", "db mongo kill-long", &a, &found)
        .await
        .expect("runs");
    assert_touched(&out, 1, 2, "operations");
    let envs = s.envs("mongosh");
    assert_eq!(envs.len(), 3);
    let kill = &envs[2];
    assert_eq!(kill["OPSBOT_OPIDS"], "202");
    assert_eq!(kill["OPSBOT_MIN_SECS"], "60");
    assert!(
        kill["OPSBOT_MONGO_URL"].contains(MONGO_PASSWORD),
        "the URL is in the env"
    );
    let script = s.calls("mongosh")[2].argv[3].clone();
    assert!(script.contains("d.killOp(o.opid)") && script.contains("ids.includes(String(o.opid))"));
    assert!(
        !envs[0].contains_key("OPSBOT_OPIDS"),
        "the preview is handed no items"
    );
}

#[tokio::test]
async fn cleanup_and_archive_delete_with_the_previewed_cutoff_and_count() {
    let c = catalog();
    for (name, a, what) in [
        ("db mongo cleanup-jobs", ("days", "30"), "scraping jobs"),
        ("db mongo archive-raw", ("days", "60"), "raw questions"),
    ] {
        let s = StandIns::new(&[("mongosh", "12\t2023-10-15T22:13:20.000Z\n")]);
        let (found, out) = preview_and_run(&s, &c, "scrape", name, &[a]).await;
        out.expect("runs");
        assert_eq!(
            found.line(),
            format!("12 {what} (cutoff 2023-10-15T22:13:20.000Z)"),
            "{name}"
        );
        assert_eq!(found.items, None);
        let envs = s.envs("mongosh");
        assert_eq!(envs.len(), 2, "{name}: no second preview without items");
        assert_eq!(envs[0][&format!("OPSBOT_{}", a.0.to_uppercase())], a.1);
        assert_eq!(envs[1]["OPSBOT_CUTOFF"], "2023-10-15T22:13:20.000Z", "{name}");
        assert_eq!(envs[1]["OPSBOT_PREVIEWED"], "12", "{name}");
        let script = &s.calls("mongosh")[1].argv[3];
        assert!(script.contains("if (n > max)"), "{name}: the count check");

        s.add("mongosh", "0\t2023-10-15T22:13:20.000Z\n");
        assert!(preview(&s, &c, "scrape", name, &[a]).await.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn restore_shows_the_backup_then_dumps_unpacks_and_restores_only_it() {
    let line =
        "2026-12-01 04:15\t48213 bytes\t/backups/daily/20261201T041500Z.tar.gz\tproduction_scraping_db\n";
    let s = StandIns::new(&[
        ("find", line),
        ("mongodump", "ok\n"),
        ("tar", ""),
        ("mongorestore", "ok\n"),
    ]);
    let c = catalog();
    let a = [("b", "20261201T041500Z")];
    let (found, out) = preview_and_run(&s, &c, "scrape", "backup restore", &a).await;
    out.expect("runs");
    assert_eq!(
        found.line(),
        "1 backups (time 2026-12-01 04:15 · size 48213 bytes · path /backups/daily/20261201T041500Z.tar.gz · target production_scraping_db)"
    );
    let finds = s.calls("find");
    assert_eq!(finds.len(), 2, "the preview, then it again before the restore");
    assert!(finds[0].argv.contains(&"20261201T041500Z.tar.gz".to_string()));
    assert_eq!(
        s.only_call("mongodump"),
        owned(&[
            "--db",
            "production_scraping_db",
            "--out",
            &format!("/backups/daily/pre_restore_{TS}")
        ])
    );
    assert_eq!(
        s.only_call("tar"),
        owned(&[
            "-xzf",
            "/backups/daily/20261201T041500Z.tar.gz",
            "-C",
            "/backups/daily"
        ])
    );
    assert_eq!(
        s.only_call("mongorestore"),
        owned(&[
            "--db",
            "production_scraping_db",
            "--drop",
            "/backups/daily/20261201T041500Z/production_scraping_db"
        ])
    );

    // The archive went away after the approval: nothing is dumped nor restored.
    restore_runs_nothing_once_gone(&c, "scrape", &a, line, &["mongodump", "tar", "mongorestore"]).await;
}

/// `profile`'s `/backup restore` with `a`, its backup (the preview's `line`)
/// gone between the preview and the execution: nothing runs, none of
/// `programs` is called.
async fn restore_runs_nothing_once_gone(
    c: &Catalog,
    profile: &str,
    a: &[(&str, &str)],
    line: &str,
    programs: &[&str],
) {
    let outputs: Vec<(&str, &str)> = std::iter::once(("find", line))
        .chain(programs.iter().map(|p| (*p, "ok\n")))
        .collect();
    let s = StandIns::new(&outputs);
    let found = preview(&s, c, profile, "backup restore", a).await;
    s.add("find", "");
    let out = execute(&s, c, profile, "backup restore", a, &found)
        .await
        .expect("runs");
    assert!(
        out.summary.starts_with("nothing run · 0 of 1"),
        "{profile}: {}",
        out.summary
    );
    for p in programs {
        assert!(s.calls(p).is_empty(), "{profile}: {p} ran");
    }
}

#[tokio::test]
async fn pdf_restore_shows_the_dated_dumps_then_backs_up_and_restores_that_date() {
    let line = "2026-12-01 02:00\t73100 bytes\t/srv/pdf-pipeline/backups/db_2026-12-01.sql.gz\tpdf_db\n";
    let s = StandIns::new(&[("find", line), ("npm", "ok\n")]);
    let app = s.path("app");
    let c = shipped_catalog_env(&cfg(), &[("OPSBOT_VALUE_PDF_APP_DIR", &app)]);
    let a = [("b", "2026-12-01")];
    let (found, out) = preview_and_run(&s, &c, "pdf", "backup restore", &a).await;
    let out = out.expect("runs");
    assert_eq!(
        found.line(),
        "1 backups (time 2026-12-01 02:00 · size 73100 bytes · path /srv/pdf-pipeline/backups/db_2026-12-01.sql.gz · target pdf_db)"
    );
    assert_touched(&out, 1, 1, "backups");
    let finds = s.calls("find");
    assert_eq!(
        finds.len(),
        3,
        "the preview, it again, the record of the dump: {finds:?}"
    );
    assert_eq!(
        finds[0].argv[..7],
        owned(&[
            "/srv/pdf-pipeline/backups",
            "-maxdepth",
            "1",
            "-type",
            "f",
            "-name",
            "*2026-12-01*"
        ])
    );
    assert_eq!(
        finds[2].argv[..2],
        owned(&["/srv/pdf-pipeline/backups/db_2026-12-01.sql.gz", "-maxdepth"])
    );
    let npm = s.calls("npm");
    assert_eq!(
        npm.iter().map(|c| c.argv.clone()).collect::<Vec<_>>(),
        [
            owned(&["run", "backup:database"]),
            owned(&["run", "restore:database", "--", "--date=2026-12-01"]),
        ],
        "the fresh backup first, then the restore"
    );
    assert!(npm.iter().all(|c| c.cwd == app));

    // The dump went away after the approval: nothing is backed up nor restored.
    restore_runs_nothing_once_gone(&c, "pdf", &a, line, &["npm"]).await;
}

#[tokio::test]
async fn storage_cleanup_hands_npm_only_the_previewed_orphans_still_orphaned() {
    let db = PgDatabase::new().await;
    for sql in [
        "CREATE TABLE processing_jobs (id int PRIMARY KEY, file_path text)",
        "INSERT INTO processing_jobs VALUES (1, 'jobs/1.pdf'), (2, 'jobs/it''s 2.pdf'), (3, 'jobs/3.pdf'), (4, NULL), (5, 'jobs/5.pdf')",
        "CREATE SCHEMA storage",
        "CREATE TABLE storage.objects (name text)",
        "INSERT INTO storage.objects VALUES ('jobs/3.pdf')",
    ] {
        db.exec(sql).await;
    }
    let s = StandIns::new(&[("npm", "removed\n")]);
    let app = s.path("app");
    let c = shipped_catalog_env(
        &cfg(),
        &[
            ("OPSBOT_TARGET_PDF_DB", &db.url),
            ("OPSBOT_VALUE_PDF_APP_DIR", &app),
        ],
    );
    let found = preview(&s, &c, "pdf", "storage cleanup", &[]).await;
    assert_eq!(
        found.line(),
        "3 orphaned files (id 1 · file_path jobs/1.pdf, id 5 · file_path jobs/5.pdf, id 2 · file_path jobs/it's 2.pdf)"
    );
    // jobs/5.pdf got its object back after the preview.
    db.exec("INSERT INTO storage.objects VALUES ('jobs/5.pdf')").await;
    let out = execute(&s, &c, "pdf", "storage cleanup", &[], &found)
        .await
        .expect("runs");
    assert_touched(&out, 2, 3, "orphaned files");
    let npm = s.calls("npm");
    assert_eq!(npm.len(), 1);
    assert_eq!(
        npm[0].argv,
        owned(&["run", "storage:cleanup", "--", "jobs/1.pdf", "jobs/it's 2.pdf"])
    );
    assert_eq!(npm[0].cwd, app);
    db.drop().await;
}

#[tokio::test]
async fn logs_prune_through_the_pipeline_stores_the_preview_and_touches_only_it() {
    for t in both().await {
        let s = StandIns::new(&[(
            "find",
            "/var/log/queue/a.log\n/var/log/queue/b.log\n/var/log/queue/c.log\n",
        )]);
        let mut config = cfg();
        config.ssh_program = s.ssh();
        config.process_allow.push("find".into());
        let p = pipeline_for(&config, catalog(), t.store.clone(), clock());
        let r = say(&p, "console:bob", "/ops logs-prune --days 40").await;
        assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}: {}", t.name, r.text);
        assert!(
            r.text.contains(
                "\npreview: 3 log files (/var/log/queue/a.log, /var/log/queue/b.log, /var/log/queue/c.log)"
            ),
            "{}",
            r.text
        );
        let id = r.approval.unwrap();
        let stored = t
            .store
            .approval(id)
            .await
            .unwrap()
            .unwrap()
            .preview
            .expect("stored");
        assert_eq!(stored.items.as_ref().map(Vec::len), Some(3));

        s.add("find", "/var/log/queue/c.log\n/var/log/queue/a.log\n");
        let restarted = pipeline_for(&config, catalog(), t.reopen().await, clock());
        let r = say(&restarted, "console:erin", &format!("/approve a{id}")).await;
        assert_eq!(r.outcome, Outcome::Done, "{}: {}", t.name, r.text);
        assert!(
            r.text
                .contains("2 of 3 previewed log files touched · 1 no longer matched (untouched)"),
            "{}",
            r.text
        );
        let calls = s.calls("find");
        assert_eq!(calls.len(), 3, "{}: {calls:?}", t.name);
        assert_eq!(
            calls[2].argv[..3],
            owned(&["/var/log/queue/a.log", "/var/log/queue/c.log", "-maxdepth"]),
            "in the previewed order"
        );
        assert!(calls[2].argv.contains(&"+40".to_string()));
        let a = t.store.approval(id).await.unwrap().unwrap();
        assert_eq!(a.state, State::Succeeded);

        // Nothing found: nothing to do, no approval.
        s.add("find", "");
        let none = say(&p, "console:bob", "/ops logs-prune").await;
        assert_eq!(
            none.text,
            "nothing to do: the preview of `/ops logs-prune` found no log files; no approval was opened"
        );
        t.cleanup().await;
    }
}

/// The scrape API answering `/api/scraping/jobs` with `jobs` and a stop for
/// each of `stops` (path segments as sent: percent-encoded).
async fn jobs_api(jobs: serde_json::Value, stops: &[&str]) -> FakeApi {
    let mut routes = vec![(
        "GET".to_string(),
        "/api/scraping/jobs".to_string(),
        json!({ "jobs": jobs }),
    )];
    for id in stops {
        routes.push((
            "PUT".into(),
            format!("/api/scraping/jobs/{id}/stop"),
            json!({"stopped": true}),
        ));
    }
    let routes: Vec<(&str, &str, serde_json::Value)> = routes
        .iter()
        .map(|(m, p, v)| (m.as_str(), p.as_str(), v.clone()))
        .collect();
    FakeApi::start(&routes).await
}

#[tokio::test]
async fn stop_all_freezes_the_running_and_queued_jobs_and_stops_each_one_still_running() {
    let jobs = json!([
        {"id": "j1", "state": "running", "progress": 40},
        {"id": "j2", "state": "completed", "progress": 100},
        {"id": "j/3", "state": "queued", "progress": 0},
        {"id": "j4", "state": "running", "progress": 75},
    ]);
    let before = jobs_api(jobs, &[]).await;
    let c = shipped_catalog_env(&cfg(), &[("OPSBOT_TARGET_SCRAPE_API", &before.url)]);
    let cmd = c.get("scrape", "scrape stop-all").unwrap();
    let exec = Executor::new(Default::default(), vec![], crate::support::bot_env(&[]));
    let found = exec
        .preview(cmd.preview.as_ref().unwrap(), &c.targets, &args(&[]))
        .await
        .unwrap();
    assert_eq!(
        found.line(),
        "3 running or queued jobs (id j1 · state running · progress 40, id j/3 · state queued · progress 0, id j4 · state running · progress 75)"
    );
    // By execution j4 finished and j5 started; j/3's stop fails.
    let now = json!([
        {"id": "j1", "state": "running"}, {"id": "j/3", "state": "running"},
        {"id": "j4", "state": "completed"}, {"id": "j5", "state": "running"},
    ]);
    let after = jobs_api(now.clone(), &["j1"]).await;
    let c = shipped_catalog_env(&cfg(), &[("OPSBOT_TARGET_SCRAPE_API", &after.url)]);
    let e = exec
        .execute_previewed(&cmd.action, &c.targets, &args(&[]), bound(cmd, &found))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("1 of 2 done, 1 failed\nj1: PUT /api/scraping/jobs/j1/stop → 200"),
        "{e}"
    );
    assert!(e.contains("\nj/3: failed: target scrape_api answered 404"), "{e}");
    assert_eq!(
        requests(&after.take()),
        [
            ("GET".to_string(), "/api/scraping/jobs".to_string()),
            ("PUT".to_string(), "/api/scraping/jobs/j1/stop".to_string()),
            ("PUT".to_string(), "/api/scraping/jobs/j%2F3/stop".to_string()),
        ],
        "one path segment per job; j4 and j5 untouched"
    );

    let all_stop = jobs_api(now, &["j1", "j%2F3"]).await;
    let c = shipped_catalog_env(&cfg(), &[("OPSBOT_TARGET_SCRAPE_API", &all_stop.url)]);
    let out = exec
        .execute_previewed(&cmd.action, &c.targets, &args(&[]), bound(cmd, &found))
        .await
        .unwrap();
    assert_touched(&out, 2, 3, "running or queued jobs");
    assert!(out.summary.starts_with("2 of 2 done · "), "{}", out.summary);
    assert_eq!(out.fields["done"], 2);
}
