//! What alerts do to incidents beyond opening one, on a virtual clock, on
//! SQLite and Postgres (alerts stored through routing as the webhooks store
//! them, the poster stepped by hand): a PagerDuty acknowledge that came
//! before the group's incident opened, and a group that fires anew after
//! its incident was resolved.

use crate::silences::Bench;
use crate::support::{audit_counts, run_test, say};
use opsbot::alerts::Status;
use opsbot::engine::Outcome;
use opsbot::incident::{Incident, State};
use opsbot::store::{OutOp, INCIDENT_STEP};

const MINUTE: i64 = 60_000;
const PD: &str = "pagerduty/chat";

impl Bench {
    async fn open_incidents(&self) -> Vec<Incident> {
        self.p.store.open_incidents().await.expect("incidents")
    }

    async fn step_due(&self, id: i64) -> Option<i64> {
        self.p
            .store
            .timer_due(INCIDENT_STEP, &id.to_string())
            .await
            .expect("timer")
    }

    /// The blocks of incident `id`'s first Slack card (as posted), as JSON text.
    async fn card_blocks(&self, id: i64) -> String {
        let rows = self
            .p
            .store
            .outbox_pending_for_tests("slack")
            .await
            .expect("outbox");
        let prefix = format!("incident:{id}:");
        rows.iter()
            .find(|r| matches!(&r.message.op, OutOp::Post { key: Some(k), .. } if k.starts_with(&prefix)))
            .map(|r| r.message.body["blocks"].to_string())
            .unwrap_or_else(|| panic!("no card for incident {id}"))
    }

    /// The pending Slack messages' texts.
    async fn texts(&self) -> Vec<String> {
        let rows = self
            .p
            .store
            .outbox_pending_for_tests("slack")
            .await
            .expect("outbox");
        rows.iter()
            .filter_map(|r| r.message.body["text"].as_str().map(String::from))
            .collect()
    }
}

/// A PagerDuty acknowledge that arrives while the group's incident is held
/// back (here by a silence) is recorded and shown in the group's message;
/// when the incident opens later, it opens acknowledged by the integration
/// and pages nobody. A group with a serious alert nobody acknowledged
/// still pages.
#[tokio::test]
async fn an_acknowledge_before_the_incident_opens_it_acknowledged() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            let r = say(&b.p, "console:alice", "/alerts silence system=chat 1h deploy").await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            b.alert_in(PD, "HighErrorRate", "chat-api-1", "critical", Status::Firing)
                .await;
            b.alert_in(PD, "AIServiceDown", "chat-api-1", "critical", Status::Firing)
                .await;
            b.alert_in(PD, "AIServiceDown", "chat-api-2", "critical", Status::Firing)
                .await;
            b.post().await;
            assert!(b.open_incidents().await.is_empty(), "silenced");
            b.clock.advance(MINUTE);
            b.alert_in(
                PD,
                "HighErrorRate",
                "chat-api-1",
                "critical",
                Status::Acknowledged,
            )
            .await;
            b.alert_in(
                PD,
                "AIServiceDown",
                "chat-api-1",
                "critical",
                Status::Acknowledged,
            )
            .await;
            b.post().await;
            let text = b.group_text("HighErrorRate").await;
            assert!(
                text.contains("👀 acknowledged by pagerduty/chat 🔕 silenced by s1"),
                "{text}"
            );
            b.advance(60 * MINUTE).await;
            let open = b.open_incidents().await;
            assert_eq!(open.len(), 2, "{open:#?}");
            let high = open
                .iter()
                .find(|i| i.title == "HighErrorRate")
                .expect("HighErrorRate's");
            assert_eq!(high.state, State::Acked, "{high:#?}");
            assert_eq!(high.acked_by.as_deref(), Some(PD));
            assert_eq!(high.acked_at, Some(high.declared_at), "acked as it opened");
            assert_eq!(b.step_due(high.id).await, None, "nobody paged");
            let card = b.card_blocks(high.id).await;
            assert!(
                card.contains("acknowledged by pagerduty/chat") && !card.contains("not acknowledged"),
                "the card shows it acked: {card}"
            );
            assert!(
                !card.contains("incident_ack") && !card.contains("Ack by"),
                "no Ack button, no ack deadline: {card}"
            );
            let events = b.p.store.incident_events(high.id).await.unwrap();
            assert!(
                events.iter().any(|e| e.kind == "ack"
                    && e.person == PD
                    && e.text == "acknowledged by pagerduty/chat before the incident opened"),
                "{events:?}"
            );
            assert!(!events.iter().any(|e| e.kind == "page"), "{events:?}");
            let texts = b.texts().await;
            assert!(
                texts
                    .iter()
                    .any(|t| t == "✅ acknowledged by pagerduty/chat before the incident opened"),
                "told in the thread: {texts:#?}"
            );
            // AIServiceDown's second alert was never acknowledged: it pages.
            let down = open
                .iter()
                .find(|i| i.title == "AIServiceDown")
                .expect("AIServiceDown's");
            assert_eq!(down.state, State::Open);
            assert!(b.step_due(down.id).await.is_some(), "escalating");
            assert_eq!(audit_counts(&b.p.store, ["incident.ack"]).await, [1]);
        })
    })
    .await;
}

/// An acknowledge of an alert below its route's threshold opens nothing;
/// the group's message shows who acknowledged it, `/alerts` counts it.
#[tokio::test]
async fn an_acknowledge_below_the_threshold_is_shown_in_the_group_message() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            b.alert_in(PD, "SlowResponseTime", "chat-api-1", "warning", Status::Firing)
                .await;
            b.post().await;
            assert!(!b.group_text("SlowResponseTime").await.contains("acknowledged"));
            b.alert_in(
                PD,
                "SlowResponseTime",
                "chat-api-1",
                "warning",
                Status::Acknowledged,
            )
            .await;
            b.post().await;
            let text = b.group_text("SlowResponseTime").await;
            assert!(text.contains("👀 acknowledged by pagerduty/chat"), "{text}");
            assert!(b.open_incidents().await.is_empty());
            let firing = say(&b.p, "console:alice", "/alerts").await.text;
            assert!(
                firing.ends_with("1 firing, P3, for 0s · 👀 1 acknowledged"),
                "{firing}"
            );
        })
    })
    .await;
}

/// An incident resolved by hand while its alerts keep firing: repeats of
/// those alerts are part of it, but a new member firing opens a new
/// incident (linked in place of the resolved one, its timeline naming it);
/// after that one resolved with its alerts, a member firing again opens a
/// third.
#[tokio::test]
async fn a_group_firing_anew_after_its_incident_was_resolved_opens_a_new_one() {
    run_test(|t| {
        Box::pin(async move {
            let b = Bench::new(t);
            b.firing("HighErrorRate", "critical").await;
            b.post().await;
            let first = b.open_incidents().await.remove(0);
            let r = say(
                &b.p,
                "console:alice",
                &format!("/incident resolve #{} rolled back", first.id),
            )
            .await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            b.clock.advance(MINUTE);
            b.firing("HighErrorRate", "critical").await; // a repeat, still firing
            b.post().await;
            assert!(
                b.open_incidents().await.is_empty(),
                "a repeat is part of the resolved incident"
            );
            b.clock.advance(MINUTE);
            b.alert("HighErrorRate", "chat-api-2", "critical", Status::Firing)
                .await;
            b.post().await;
            let open = b.open_incidents().await;
            assert_eq!(open.len(), 1, "{open:#?}");
            let second = open[0].clone();
            assert_ne!(second.id, first.id);
            assert_eq!(
                (second.title.as_str(), second.state),
                ("HighErrorRate", State::Open)
            );
            let groups = b.p.store.alert_groups().await.unwrap();
            let group = groups.iter().find(|g| g.state == "firing").unwrap();
            assert_eq!(
                group.incident_id,
                Some(second.id),
                "linked in place of the resolved one"
            );
            let events = b.p.store.incident_events(second.id).await.unwrap();
            let declared = format!("firing again after #{} was resolved", first.id);
            assert!(events[0].text.ends_with(&declared), "{events:?}");
            // It resolves with its alerts; a member firing again opens a third.
            b.clock.advance(MINUTE);
            b.alert("HighErrorRate", "chat-api-1", "critical", Status::Resolved)
                .await;
            b.alert("HighErrorRate", "chat-api-2", "critical", Status::Resolved)
                .await;
            b.post().await;
            assert!(b.open_incidents().await.is_empty(), "resolved with its alerts");
            b.clock.advance(MINUTE);
            b.firing("HighErrorRate", "critical").await;
            b.post().await;
            let third = b.open_incidents().await;
            assert_eq!(third.len(), 1, "{third:#?}");
            assert!(third[0].id != first.id && third[0].id != second.id);
            assert!(b.step_due(third[0].id).await.is_some(), "it pages");
            assert_eq!(audit_counts(&b.p.store, ["incident.declared"]).await, [3]);
        })
    })
    .await;
}
