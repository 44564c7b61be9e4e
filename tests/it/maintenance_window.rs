//! pdf's maintenance mode (runbooks.md OPS-38..OPS-41) through the pipeline
//! on SQLite and Postgres: the npm scripts run on the app host through the
//! ssh stand-in (each recording its argv), and the bot's maintenance window
//! (a `maintenance` silence of profile pdf) opens, ends or is required in
//! the transaction that records the execution. Alerts are stored through
//! the shipped routes as the webhooks store them; the poster and the timer
//! loop are stepped by hand on a virtual clock.

use crate::support::{
    audit_counts, config_enabling_each, owned, pipeline_for, run_test, say_in, shipped_catalog_env, StandIns,
    TestStore,
};
use opsbot::alerts::Status;
use opsbot::clock::Clock;
use opsbot::engine::{Outcome, Reply};

const MINUTE: i64 = 60_000;

/// pdf enabled and bound to C_PDF, its npm allowed, a tech lead.
const EXTRA: &str = r#"
[channels.C_PDF]
profile = "pdf"

[process.pdf]
allow = ["npm"]

[people.erin]
console = "erin"
roles = ["tech-lead"]
"#;

/// The chat test policy in pdf's scale (SEV1..SEV4), so pages can open.
fn pdf_policy() -> String {
    crate::alerts::CHAT_POLICY
        .replace("policies.chat", "policies.pdf")
        .replace("\"P", "\"SEV")
        .replace(".P", ".SEV")
}

struct Bench {
    b: crate::silences::Bench,
    s: StandIns,
}

impl std::ops::Deref for Bench {
    type Target = crate::silences::Bench;
    fn deref(&self) -> &Self::Target {
        &self.b
    }
}

impl Bench {
    fn new(t: &TestStore) -> Bench {
        let s = StandIns::new(&[("npm", "ok\n")]);
        let mut config = config_enabling_each(&format!("{EXTRA}\n{}", pdf_policy()), &["pdf"]);
        config.ssh_program = s.ssh();
        let catalog = shipped_catalog_env(&config, &[("OPSBOT_VALUE_PDF_APP_DIR", &s.path("app"))]);
        let clock = crate::support::clock();
        let p = pipeline_for(&config, catalog, t.store.clone(), clock.clone());
        Bench {
            b: crate::silences::Bench::around(p, clock),
            s,
        }
    }

    async fn say(&self, who: &str, text: &str) -> Reply {
        say_in(&self.p, "C_PDF", &format!("console:{who}"), text).await
    }

    /// `text` requested by bob and approved by erin: the execution's reply.
    async fn approved(&self, text: &str) -> Reply {
        let r = self.say("bob", text).await;
        assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}", r.text);
        self.say("erin", &format!("/approve a{}", r.approval.expect("an approval")))
            .await
    }

    /// Stores one critical alert of system pdf, as the webhook does.
    async fn firing(&self, name: &str) {
        let labels = [("alertname", name), ("severity", "critical"), ("system", "pdf")];
        self.alert_labelled("alertmanager", &labels, Status::Firing).await
    }

    /// The open incidents' titles, sorted.
    async fn open(&self) -> Vec<String> {
        let mut titles = self.open_titles().await;
        titles.sort();
        titles
    }

    /// The npm scripts run so far, in order.
    fn scripts(&self) -> Vec<Vec<String>> {
        self.s.calls("npm").into_iter().map(|c| c.argv).collect()
    }
}

fn npm(args: &[&str]) -> Vec<String> {
    owned(&[&["run"], args].concat())
}

/// OPS-38 approved: enable runs, pdf's window opens (shown, audited as
/// /alerts maintenance's is), a pdf alert during it is recorded but pages
/// nobody; OPS-41 then runs; OPS-39 disables, ends the window (the held-back
/// incident opens) and verifies; OPS-41 is refused once the window is off.
#[tokio::test]
async fn maintenance_on_silences_pdf_apply_needs_it_and_off_ends_it() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            let r = b.approved("/ops maintenance on --for 1h").await;
            assert_eq!(r.outcome, Outcome::Done, "{}: {}", t.name, r.text);
            let until = opsbot::clock::rfc3339(b.clock.now_ms() + 60 * MINUTE);
            assert!(
                r.text.contains(&format!(
                    "\n🔧 maintenance window s1 for pdf until {until} (1h) — matches 0 firing alerts now"
                )),
                "{}",
                r.text
            );
            assert_eq!(b.scripts(), [npm(&["maintenance:enable"])]);
            let rows = b.p.store.silences().await.unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(
                (rows[0].kind.as_str(), rows[0].matchers.as_str(), rows[0].created_by.as_str()),
                ("maintenance", "[\"profile=\\\"pdf\\\"\"]", "bob")
            );
            let records = b.p.store.audit_records().await.unwrap();
            let created = records
                .iter()
                .find(|r| r.entry.kind == "maintenance.created")
                .expect("audited");
            assert_eq!(created.entry.source, "console");
            assert_eq!(created.entry.command.as_deref(), Some("pdf:ops maintenance on"));

            b.firing("PdfStuckJobs").await;
            b.post().await;
            assert!(b.open().await.is_empty(), "no page during the window");
            assert_eq!(b.p.store.alerts_count().await.unwrap(), 1, "recorded");

            let r = b.approved("/ops maintenance apply").await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert_eq!(b.scripts().last(), Some(&npm(&["maintenance:apply-updates"])));

            let r = b.say("alice", "/ops maintenance off").await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert!(
                r.text.contains("\n🔔 maintenance window s1 for pdf ended; its alerts page again."),
                "{}",
                r.text
            );
            assert_eq!(
                b.scripts()[2..],
                [npm(&["maintenance:disable"]), npm(&["maintenance:verify"])]
            );
            assert_eq!(
                audit_counts(&b.p.store, ["maintenance.created", "maintenance.ended"]).await,
                [1, 1]
            );
            b.post().await;
            assert_eq!(b.open().await, ["PdfStuckJobs"], "pages resume");

            let r = b.approved("/ops maintenance apply").await;
            assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
            assert!(
                r.text.contains("running outside a maintenance window refused: this runs only while its system's maintenance window is on, and none is on now"),
                "{}",
                r.text
            );
            assert!(r.text.contains("step 2 did not run"), "{}", r.text);
            assert_eq!(b.scripts().len(), 4, "apply-updates did not run again");
            // Off again: nothing to end, still a success.
            let r = b.say("alice", "/ops maintenance off").await;
            assert!(r.text.contains("\nNo maintenance window of pdf was on."), "{}", r.text);
        })
    })
    .await;
}

/// A failed enable stops the seq before its window step: no window.
#[tokio::test]
async fn a_failed_enable_opens_no_window() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            let npm = b.s.dir.path().join("bin").join("npm");
            let failing = "#!/bin/sh\necho 'cannot reach the app' >&2\nexit 3\n";
            std::fs::write(&npm, failing).unwrap();
            let r = b.approved("/ops maintenance on").await;
            assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
            assert!(
                r.text.contains("step 1 of 2 failed; step 2 did not run"),
                "{}",
                r.text
            );
            assert!(b.p.store.silences().await.unwrap().is_empty());
            assert_eq!(audit_counts(&b.p.store, ["maintenance.created"]).await, [0]);
            b.firing("PdfStuckJobs").await;
            b.post().await;
            assert_eq!(b.open().await, ["PdfStuckJobs"], "it pages");
        })
    })
    .await;
}

/// OPS-40: the script is told the day and length; the bot's window starts
/// at --at that day, so an alert now still pages and one during it does
/// not; --notify runs the notification script after.
#[tokio::test]
async fn a_scheduled_window_silences_only_from_its_start() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            // The clock: 2023-11-14T22:13:20Z.
            let r = b
                .say("bob", "/ops maintenance schedule 2023-11-15 2h --at 10:00 --notify")
                .await;
            assert_eq!(r.outcome, Outcome::Done, "{}: {}", t.name, r.text);
            assert!(
                r.text.contains("\n🔧 maintenance window s1 for pdf scheduled from 2023-11-15T10:00:00.000Z until 2023-11-15T12:00:00.000Z (2h)"),
                "{}",
                r.text
            );
            assert_eq!(
                b.scripts(),
                [
                    npm(&["maintenance:schedule", "--", "--date=2023-11-15", "--duration=2h"]),
                    npm(&["maintenance:notify-users"]),
                ]
            );
            let listed = b.say("alice", "/alerts silences").await.text;
            assert_eq!(
                listed,
                "No active silences.\n1 to come:\n• s1 🔧 maintenance pdf from 2023-11-15T10:00:00.000Z (in 11h46m40s) until 2023-11-15T12:00:00.000Z, by bob — /ops maintenance schedule 2023-11-15 2h --at 10:00 --notify"
            );
            b.firing("PdfStuckJobs").await;
            b.post().await;
            assert_eq!(b.open().await, ["PdfStuckJobs"], "not silenced yet");
            // 10:00 + 1 minute: the start timer fired.
            b.advance(((11 * 60 + 47) + 1) * MINUTE).await;
            assert_eq!(audit_counts(&b.p.store, ["maintenance.started"]).await, [1]);
            b.firing("PdfErrorRateHigh").await;
            b.post().await;
            assert_eq!(b.open().await, ["PdfStuckJobs"], "silenced during the window");
            b.advance(2 * 60 * MINUTE).await;
            assert_eq!(
                b.open().await,
                ["PdfErrorRateHigh", "PdfStuckJobs"],
                "pages after the window"
            );
            // A window already over opens nothing, and says so.
            let r = b.say("bob", "/ops maintenance schedule 2023-11-14 2h").await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert!(r.text.contains("maintenance window not opened: it would have ended at 2023-11-14T02:00:00.000Z"), "{}", r.text);
            assert_eq!(b.p.store.silences().await.unwrap().len(), 1);
            // A day the bot cannot read runs nothing.
            let before = b.scripts().len();
            let r = b.say("bob", "/ops maintenance schedule 2023-02-30 2h").await;
            assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
            assert!(r.text.contains("nothing was run"), "{}", r.text);
            assert_eq!(b.scripts().len(), before);
        })
    })
    .await;
}

/// OPS-39 ends any window of pdf (one `/alerts maintenance pdf` set too),
/// and once the mode is off the window stays ended when the verify that
/// follows fails: the effects of the steps that ran hold.
#[tokio::test]
async fn off_ends_the_window_even_when_the_verify_fails() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            let r = b.say("alice", "/alerts maintenance pdf 1h patching").await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            let npm = b.s.dir.path().join("bin").join("npm");
            let log = b.s.dir.path().join("log").join("npm");
            let script = format!(
                "#!/bin/sh\necho \"$2\" >> '{}'\n[ \"$2\" = maintenance:verify ] && {{ echo 'still in maintenance' >&2; exit 1; }}\nexit 0\n",
                log.display()
            );
            std::fs::write(&npm, script).unwrap();
            let r = b.say("alice", "/ops maintenance off").await;
            assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
            assert!(r.text.contains("step 3 of 3 failed"), "{}", r.text);
            assert!(
                r.text.contains("\n🔔 maintenance window s1 for pdf ended; its alerts page again."),
                "{}",
                r.text
            );
            let ran = std::fs::read_to_string(&log).unwrap();
            assert_eq!(ran, "maintenance:disable\nmaintenance:verify\n");
            let rows = b.p.store.silences().await.unwrap();
            assert_eq!(rows[0].ended_by.as_deref(), Some("alice"));
            b.firing("PdfStuckJobs").await;
            b.post().await;
            assert_eq!(b.open().await, ["PdfStuckJobs"], "it pages");
        })
    })
    .await;
}
