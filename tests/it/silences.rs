//! Silences and maintenance windows on a virtual clock, on SQLite and
//! Postgres: alerts are stored through routing exactly as the webhooks
//! store them, the alert poster and the timer loop are stepped by hand, and
//! commands go through the pipeline as chat would send them.

use crate::alerts::CHAT_POLICY;
use crate::support::{audit_counts, audit_kinds, run_test, say, TestStore};
use opsbot::alerts::route::RouteTree;
use opsbot::alerts::{placed, Alert, Format, Labels, Links, Status};
use opsbot::app;
use opsbot::clock::{Clock, ManualClock};
use opsbot::config::Config;
use opsbot::engine::{alert_poster, timers, Outcome, Pipeline};
use opsbot::incident::State;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

const MINUTE: i64 = 60_000;

/// A pipeline on a manual clock with the shipped alert routes.
pub(crate) struct Bench {
    pub(crate) p: Pipeline,
    pub(crate) clock: Arc<ManualClock>,
    tree: Arc<RouteTree>,
}

impl Bench {
    pub(crate) fn new(t: &TestStore) -> Bench {
        Self::over(t.store.clone(), crate::support::clock())
    }

    fn over(store: opsbot::store::Store, clock: Arc<ManualClock>) -> Bench {
        let config = crate::support::config(CHAT_POLICY);
        let p = crate::support::pipeline_with(&config, store, "http://127.0.0.1:9", clock.clone());
        Self::around(p, clock)
    }

    /// A bench around `p` (on `clock`) with the shipped alert routes.
    pub(crate) fn around(p: Pipeline, clock: Arc<ManualClock>) -> Bench {
        let shipped = Config::load(Path::new("config/opsbot.toml"), &HashMap::new()).expect("shipped config");
        let tree = app::Edge::from_config(&shipped).alerts.routes;
        Bench { p, clock, tree }
    }

    /// Stores one Alertmanager alert of system chat, as the webhook does.
    pub(crate) async fn alert(&self, name: &str, instance: &str, severity: &str, status: Status) {
        self.alert_in("alertmanager", name, instance, severity, status)
            .await
    }

    /// Stores one alert of system chat that came in with `scope`
    /// (`pagerduty/chat`: PagerDuty's integration chat).
    pub(crate) async fn alert_in(
        &self,
        scope: &str,
        name: &str,
        instance: &str,
        severity: &str,
        status: Status,
    ) {
        let labels = [
            ("alertname", name),
            ("instance", instance),
            ("severity", severity),
            ("system", "chat"),
        ];
        self.alert_labelled(scope, &labels, status).await
    }

    /// Stores one alert with `labels` that came in with `scope`, keyed by
    /// its `alertname/instance`.
    pub(crate) async fn alert_labelled(&self, scope: &str, labels: &[(&str, &str)], status: Status) {
        let label = |k: &str| labels.iter().find(|(n, _)| *n == k).map_or("", |(_, v)| *v);
        let fingerprint = format!("{}/{}", label("alertname"), label("instance"));
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let format = if scope == "alertmanager" {
            Format::Alertmanager
        } else {
            Format::PagerDuty
        };
        let a = Alert {
            format,
            scope: scope.into(),
            fingerprint,
            status,
            labels,
            annotations: Labels::new(),
            title: None,
            starts_at: None,
            ends_at: None,
            links: Links::default(),
        };
        let now = self.clock.now_ms();
        let batch = placed(&[a], &self.tree, now);
        self.p.store.ingest_alerts(&batch, now).await.expect("stored");
    }

    pub(crate) async fn firing(&self, name: &str, severity: &str) {
        self.alert(name, "chat-api-1", severity, Status::Firing).await;
    }

    /// One round of the alert poster (no sender runs here, so its rows stay
    /// pending: a pace of 1,000/s keeps them from ever making a storm).
    pub(crate) async fn post(&self) {
        self.post_paced(1_000).await
    }

    /// One round of the alert poster measuring storms at `per_sec`.
    pub(crate) async fn post_paced(&self, per_sec: u32) {
        alert_poster::post_changed(&self.p, per_sec)
            .await
            .expect("poster");
    }

    /// Moves the clock, fires what is due, runs the poster.
    pub(crate) async fn advance(&self, ms: i64) {
        self.clock.advance(ms);
        timers::fire_due(&self.p).await.expect("timers");
        self.post().await;
    }

    pub(crate) async fn open_titles(&self) -> Vec<String> {
        let open = self.p.store.open_incidents().await.expect("incidents");
        open.into_iter().map(|i| i.title).collect()
    }

    /// The newest pending Slack group message mentioning `what`.
    pub(crate) async fn group_text(&self, what: &str) -> String {
        let rows = self
            .p
            .store
            .outbox_pending_for_tests("slack")
            .await
            .expect("outbox");
        rows.iter()
            .rev()
            .filter_map(|r| r.message.body["text"].as_str())
            .find(|t| t.starts_with('🔥') && t.contains(what))
            .unwrap_or_else(|| panic!("no group message about {what}: {rows:#?}"))
            .to_string()
    }
}

/// A silenced critical alert is stored and its group's message shows it
/// silenced (id and end), but it opens no incident; an unsilenced one next
/// to it does.
#[tokio::test]
async fn a_silence_holds_back_the_incident_but_the_message_shows_the_alert() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            let r = say(
                &b.p,
                "console:alice",
                "/alerts silence alertname=HighErrorRate 1h deploy v2",
            )
            .await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert!(
                r.text.contains("silence s1") && r.text.contains("matches 0 firing alerts now"),
                "{}",
                r.text
            );
            b.firing("HighErrorRate", "critical").await;
            b.firing("DatabaseConnectionFailure", "critical").await;
            b.post().await;
            assert_eq!(b.open_titles().await, ["DatabaseConnectionFailure"]);
            assert_eq!(b.p.store.alerts_count().await.unwrap(), 2, "both stored");
            let text = b.group_text("HighErrorRate").await;
            let end = opsbot::clock::rfc3339(b.clock.now_ms() + 60 * MINUTE);
            assert!(text.contains(&format!("🔕 silenced by s1 until {end}")), "{text}");
            let other = b.group_text("DatabaseConnectionFailure").await;
            assert!(!other.contains("silenced"), "{other}");
            // A second silence counts what it matches now.
            let r = say(
                &b.p,
                "console:alice",
                "/alerts silence severity=critical,system=chat 30m",
            )
            .await;
            assert!(r.text.contains("matches 2 firing alerts now"), "{}", r.text);
            let kinds = audit_kinds(&b.p.store).await;
            assert_eq!(
                kinds.iter().filter(|k| *k == "silence.created").count(),
                2,
                "{kinds:?}"
            );
        })
    })
    .await;
}

/// When a silence expires on the clock, a group at its route's threshold
/// that is still firing opens its incident then, and its message loses the
/// silenced mark.
#[tokio::test]
async fn expiry_opens_the_incident_the_silence_held_back() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            b.firing("HighErrorRate", "critical").await;
            let r = say(
                &b.p,
                "console:alice",
                "/alerts silence alertname=HighErrorRate 1h",
            )
            .await;
            assert!(r.text.contains("matches 1 firing alert now"), "{}", r.text);
            b.post().await;
            assert!(b.open_titles().await.is_empty());
            assert!(b.group_text("HighErrorRate").await.contains("🔕 silenced by s1"));
            b.advance(59 * MINUTE).await;
            assert!(b.open_titles().await.is_empty(), "still silenced");
            b.advance(2 * MINUTE).await;
            assert_eq!(
                b.open_titles().await,
                ["HighErrorRate"],
                "opened when the silence ended"
            );
            assert!(!b.group_text("HighErrorRate").await.contains("silenced"));
            assert!(audit_kinds(&b.p.store)
                .await
                .contains(&"silence.expired".to_string()));
            // A silence that expired over a group that resolved meanwhile opens nothing.
            say(
                &b.p,
                "console:alice",
                "/alerts silence alertname=AIServiceDown 10m",
            )
            .await;
            b.firing("AIServiceDown", "critical").await;
            b.post().await;
            b.alert("AIServiceDown", "chat-api-1", "critical", Status::Resolved)
                .await;
            b.advance(11 * MINUTE).await;
            assert_eq!(b.open_titles().await, ["HighErrorRate"]);
            assert_eq!(
                b.p.store.timer_due("silence.end", "2").await.unwrap(),
                None,
                "fired"
            );
        })
    })
    .await;
}

/// `/alerts unsilence` ends a silence early (audited, its timer gone) and
/// the incident it held back opens; ending it twice is refused.
#[tokio::test]
async fn unsilence_ends_it_early_and_pages_again() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            say(
                &b.p,
                "console:alice",
                "/alerts silence alertname=HighErrorRate 2h",
            )
            .await;
            assert!(b.p.store.timer_due("silence.end", "1").await.unwrap().is_some());
            b.firing("HighErrorRate", "critical").await;
            b.post().await;
            assert!(b.open_titles().await.is_empty());
            b.clock.advance(5 * MINUTE);
            let r = say(&b.p, "console:bob", "/alerts unsilence s1").await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert!(r.text.contains("ended by bob"), "{}", r.text);
            b.post().await;
            assert_eq!(b.open_titles().await, ["HighErrorRate"]);
            assert_eq!(b.p.store.timer_due("silence.end", "1").await.unwrap(), None);
            let again = say(&b.p, "console:alice", "/alerts unsilence s1").await;
            assert_eq!(again.outcome, Outcome::Usage);
            assert!(again.text.contains("already ended"), "{}", again.text);
            let none = say(&b.p, "console:alice", "/alerts unsilence s9").await;
            assert!(none.text.contains("There is no silence s9"), "{}", none.text);
            assert!(say(&b.p, "console:alice", "/alerts silences")
                .await
                .text
                .contains("No active silences"));
            assert!(audit_kinds(&b.p.store)
                .await
                .contains(&"silence.ended".to_string()));
        })
    })
    .await;
}

/// A silence that would match everything is refused and nothing is
/// stored; so is one without matchers or over 7 days.
#[tokio::test]
async fn a_match_all_silence_is_refused() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            for text in [
                "/alerts silence alertname=~.* 1h",
                "/alerts silence alertname=~.+ 1h",
                "/alerts silence severity!=info 1h",
                "/alerts silence 1h",
                "/alerts silence alertname=HighErrorRate 8d",
            ] {
                let r = say(&b.p, "console:alice", text).await;
                assert_eq!(r.outcome, Outcome::Usage, "{text}: {}", r.text);
            }
            assert!(b
                .p
                .store
                .active_silences(b.clock.now_ms())
                .await
                .unwrap()
                .is_empty());
            b.firing("HighErrorRate", "critical").await;
            b.post().await;
            assert_eq!(b.open_titles().await, ["HighErrorRate"], "nothing silenced");
        })
    })
    .await;
}

/// `/alerts` and `/alerts silences` need support; setting and ending
/// silences and maintenance windows needs oncall. Refusals are audited.
#[tokio::test]
async fn silences_need_oncall_and_listing_needs_support() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            assert_eq!(say(&b.p, "console:dave", "/alerts").await.outcome, Outcome::Done);
            assert_eq!(
                say(&b.p, "console:dave", "/alerts silences").await.outcome,
                Outcome::Done
            );
            for text in [
                "/alerts silence alertname=HighErrorRate 1h",
                "/alerts maintenance chat 1h",
                "/alerts unsilence s1",
            ] {
                let r = say(&b.p, "console:dave", text).await;
                assert_eq!(r.outcome, Outcome::NotPermitted, "{text}");
                assert!(r.text.contains("oncall role"), "{}", r.text);
            }
            let stranger = say(&b.p, "console:mallory", "/alerts").await;
            assert_eq!(stranger.outcome, Outcome::NotPermitted);
            assert!(stranger.text.contains("support role"), "{}", stranger.text);
            assert!(b
                .p
                .store
                .active_silences(b.clock.now_ms())
                .await
                .unwrap()
                .is_empty());
            let kinds = audit_kinds(&b.p.store).await;
            assert_eq!(kinds.iter().filter(|k| *k == "denied").count(), 4, "{kinds:?}");
            // bob (sre implies oncall) may.
            let r = say(&b.p, "console:bob", "/alerts silence alertname=HighErrorRate 1h").await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        })
    })
    .await;
}

/// `/alerts` lists the firing groups, most severe first, bounded, with the
/// silenced ones marked.
#[tokio::test]
async fn alerts_lists_what_is_firing_bounded() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            assert_eq!(
                say(&b.p, "console:alice", "/alerts").await.text,
                "Nothing is firing."
            );
            for i in 0..17 {
                b.firing(&format!("Warn{i:02}"), "warning").await;
            }
            b.firing("HighErrorRate", "critical").await;
            b.alert("HighErrorRate", "chat-api-2", "critical", Status::Firing)
                .await;
            b.alert("Warn00", "gone", "warning", Status::Resolved).await;
            say(
                &b.p,
                "console:alice",
                "/alerts silence alertname=HighErrorRate,instance=chat-api-2 1h",
            )
            .await;
            b.clock.advance(3 * MINUTE);
            let text = say(&b.p, "console:alice", "/alerts").await.text;
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines[0], "🔥 19 alerts firing in 18 groups:", "{text}");
            assert_eq!(
                lines[1], "• chat {alertname=\"HighErrorRate\"} (chat): 2 firing, P1, for 3m · 🔕 1 silenced",
                "{text}"
            );
            assert!(
                lines[2].contains("Warn") && lines[2].contains("1 firing, P3"),
                "{text}"
            );
            assert_eq!(lines.len(), 1 + 15 + 1, "top 15 and a count: {text}");
            assert_eq!(lines[16], "… and 3 more");
            let silences = say(&b.p, "console:alice", "/alerts silences").await.text;
            assert!(
                silences.starts_with(
                    "1 active silence:\n• s1 alertname=\"HighErrorRate\", instance=\"chat-api-2\" until "
                ) && silences.contains("(57m left), by alice"),
                "{silences}"
            );
        })
    })
    .await;
}

/// `/alerts maintenance <system>` silences every route of that profile for
/// the window (alerts still recorded and shown) and is listed; other
/// systems still page.
#[tokio::test]
async fn a_maintenance_window_silences_its_system_s_pages() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            let r = say(&b.p, "console:bob", "/alerts maintenance chat 2h kernel updates").await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert!(
                r.text.starts_with("🔧 maintenance window s1 for chat until "),
                "{}",
                r.text
            );
            b.firing("HighErrorRate", "critical").await;
            b.firing("AIServiceDown", "critical").await;
            b.post().await;
            assert!(b.open_titles().await.is_empty(), "no pages during maintenance");
            assert!(b.group_text("AIServiceDown").await.contains("🔕 silenced by s1"));
            let listed = say(&b.p, "console:alice", "/alerts silences").await.text;
            assert!(
                listed.contains("• s1 🔧 maintenance chat until ")
                    && listed.ends_with("by bob — kernel updates"),
                "{listed}"
            );
            assert!(audit_kinds(&b.p.store)
                .await
                .contains(&"maintenance.created".to_string()));
            b.advance(121 * MINUTE).await;
            let mut open = b.open_titles().await;
            open.sort();
            assert_eq!(open, ["AIServiceDown", "HighErrorRate"], "pages after the window");
        })
    })
    .await;
}

/// A silence is stored: after a restart (a new pipeline over a reopened
/// store) it still holds back pages, is listed, and still expires.
#[tokio::test]
async fn a_silence_survives_a_restart() {
    run_test(|t| {
        Box::pin(async move {
            let clock = crate::support::clock();
            {
                let b = Bench::over(t.store.clone(), clock.clone());
                say(
                    &b.p,
                    "console:alice",
                    "/alerts silence alertname=HighErrorRate 1h",
                )
                .await;
            }
            let b = Bench::over(t.reopen().await, clock.clone());
            b.firing("HighErrorRate", "critical").await;
            b.post().await;
            assert!(b.open_titles().await.is_empty());
            assert!(say(&b.p, "console:alice", "/alerts silences")
                .await
                .text
                .contains("• s1 "));
            b.advance(61 * MINUTE).await;
            assert_eq!(b.open_titles().await, ["HighErrorRate"]);
        })
    })
    .await;
}

/// A new serious alert joining a group whose incident is open joins that
/// incident: no second one.
#[tokio::test]
async fn a_serious_alert_joining_an_open_incident_opens_no_second() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            b.firing("HighErrorRate", "critical").await;
            b.post().await;
            let first = b.p.store.open_incidents().await.unwrap();
            assert_eq!(first.len(), 1);
            b.alert("HighErrorRate", "chat-api-2", "critical", Status::Firing)
                .await;
            b.alert("HighErrorRate", "chat-api-3", "critical", Status::Firing)
                .await;
            b.post().await;
            let open = b.p.store.open_incidents().await.unwrap();
            assert_eq!(open.len(), 1, "{open:#?}");
            assert_eq!(open[0].id, first[0].id);
            assert_eq!(open[0].state, State::Open);
            assert!(b.group_text("HighErrorRate").await.starts_with("🔥 3 firing"));
        })
    })
    .await;
}

/// Ended and expired silences are deleted by housekeeping 30 days after
/// their end; active ones and younger ones stay, and so do their audit
/// entries. `/alerts silences` lists only the active ones.
#[tokio::test]
async fn ended_silences_are_pruned_after_30_days_and_their_audit_stays() {
    run_test(|t| {
        Box::pin(async move {
            const DAY: i64 = 24 * 60 * MINUTE;
            let b = Bench::new(t);
            say(
                &b.p,
                "console:alice",
                "/alerts silence alertname=HighErrorRate 1h",
            )
            .await;
            say(
                &b.p,
                "console:alice",
                "/alerts silence alertname=AIServiceDown 2h",
            )
            .await;
            b.clock.advance(5 * MINUTE);
            say(&b.p, "console:alice", "/alerts unsilence s2").await;
            b.advance(56 * MINUTE).await; // s1 expires
            let ids =
                |rows: Vec<opsbot::store::SilenceRow>| rows.into_iter().map(|s| s.id).collect::<Vec<_>>();
            b.clock.advance(30 * DAY - 51 * MINUTE); // s2 ended 30 days and 5 minutes ago
            say(
                &b.p,
                "console:alice",
                "/alerts silence alertname=SlowResponseTime 1h",
            )
            .await;
            let listed = say(&b.p, "console:alice", "/alerts silences").await.text;
            assert!(listed.starts_with("1 active silence:\n• s3 "), "{listed}");
            opsbot::engine::housekeeping::prune(&b.p.store, b.clock.now_ms()).await;
            assert_eq!(
                ids(b.p.store.silences().await.unwrap()),
                [1, 3],
                "s2 ended 30 days ago"
            );
            b.clock.advance(55 * MINUTE);
            opsbot::engine::housekeeping::prune(&b.p.store, b.clock.now_ms()).await;
            assert_eq!(
                ids(b.p.store.silences().await.unwrap()),
                [3],
                "s1 expired 30 days ago"
            );
            let gone = say(&b.p, "console:alice", "/alerts unsilence s1").await;
            assert!(gone.text.contains("There is no silence s1"), "{}", gone.text);
            let kinds = ["silence.created", "silence.ended", "silence.expired"];
            assert_eq!(audit_counts(&b.p.store, kinds).await, [3, 1, 1]);
        })
    })
    .await;
}

/// A group's message shows its open members newest change first (firing
/// and acknowledged alike), then its newest resolved ones, and counts every
/// member, whatever its status.
#[tokio::test]
async fn a_group_shows_its_newest_open_members_first_and_counts_them_all() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            for i in 0..12 {
                b.alert("HighErrorRate", &format!("i{i:02}"), "warning", Status::Firing)
                    .await;
                b.clock.advance(1_000);
            }
            for (i, status) in [
                (2, Status::Acknowledged),
                (0, Status::Resolved),
                (5, Status::Acknowledged),
                (1, Status::Resolved),
                (3, Status::Resolved),
            ] {
                b.alert("HighErrorRate", &format!("i{i:02}"), "warning", status)
                    .await;
                b.clock.advance(1_000);
            }
            let groups = b.p.store.alert_groups().await.unwrap();
            assert_eq!(groups.len(), 1, "{groups:#?}");
            let (shown, open, resolved) = b.p.store.group_members(groups[0].id, 10).await.unwrap();
            let names: Vec<String> = shown
                .iter()
                .map(|a| format!("{} {}", a.record.fingerprint, a.record.status))
                .collect();
            let expected = [
                "i05 acknowledged",
                "i02 acknowledged",
                "i11 firing",
                "i10 firing",
                "i09 firing",
                "i08 firing",
                "i07 firing",
                "i06 firing",
                "i04 firing",
                "i03 resolved",
            ]
            .map(|s| format!("HighErrorRate/{s}"));
            assert_eq!(names, expected);
            assert_eq!((open, resolved), (9, 3));
        })
    })
    .await;
}

/// Reading a group and a storm's counts (what the poster reads for every
/// render, however large the group or storm) does not wait for a step's
/// open transaction: on SQLite those reads have connections of their own
/// beside the one writer.
#[tokio::test]
async fn group_and_storm_reads_do_not_wait_for_an_open_write() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            b.alert("HighErrorRate", "i00", "warning", Status::Firing).await;
            let group = b.p.store.alert_groups().await.unwrap()[0].id;
            let open_step = b.p.store.begin().await.unwrap();
            let within = std::time::Duration::from_secs(5);
            let members = tokio::time::timeout(within, b.p.store.group_members(group, 10))
                .await
                .expect("the group read waited for the open transaction")
                .unwrap();
            assert_eq!((members.0.len(), members.1, members.2), (1, 1, 0));
            let counts = tokio::time::timeout(within, b.p.store.storm_counts(1))
                .await
                .expect("the storm count waited for the open transaction")
                .unwrap();
            assert!(counts.is_empty(), "{counts:?}");
            drop(open_step);
        })
    })
    .await;
}
