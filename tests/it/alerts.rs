//! Alert ingest through the real HTTP server, on SQLite and Postgres: each
//! format's fixture is stored before its 2xx, repeats are one record whose
//! state changes, refusals store nothing.

use crate::support::{run_test, test_edge, TestApp, TestStore};
use opsbot::app;
use opsbot::config::Config;
use opsbot::store::StoredAlert;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

const TOKEN: &str = "alert-token-for-tests";
const GRAFANA_SECRET: &str = "grafana-hmac-secret";
/// 32 characters, as PagerDuty integration keys are.
const PDF_KEY: &str = "pdfpdfpdfpdfpdfpdfpdfpdfpdfpdf01";
const CHAT_KEY: &str = "chatchatchatchatchatchatchatch02";

/// The shipped config's routes with test credentials.
pub(crate) fn edge(with_credentials: bool) -> app::Edge {
    let env: HashMap<String, String> = if with_credentials {
        [
            ("OPSBOT_ALERT_TOKEN", TOKEN),
            ("OPSBOT_GRAFANA_SECRET", GRAFANA_SECRET),
            ("OPSBOT_ALERT_ROUTING_KEY_PDF", PDF_KEY),
            ("OPSBOT_ALERT_ROUTING_KEY_CHAT", CHAT_KEY),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    } else {
        HashMap::new()
    };
    let config = Config::load(Path::new("config/opsbot.toml"), &env).expect("shipped config");
    app::Edge {
        limits: test_edge().limits,
        ..app::Edge::from_config(&config)
    }
}

async fn spawn(t: &TestStore) -> TestApp {
    TestApp::spawn_with_edge(t.store.clone(), edge(true)).await
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("tests/fixtures/alerts/{name}")).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// A PagerDuty fixture carrying integration key `key`.
fn pd_fixture(name: &str, key: &str) -> Value {
    let mut v = fixture(name);
    v["routing_key"] = key.into();
    v
}

fn grafana_signature(body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(GRAFANA_SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl TestApp {
    /// POSTs `body` to `path` with `headers`.
    async fn post_alert(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request")
    }

    /// POSTs `body` as JSON to `path` with the Bearer token (and Grafana's
    /// signature on `/alerts/grafana`).
    pub(crate) async fn alert(&self, path: &str, body: &Value) -> reqwest::Response {
        let text = body.to_string();
        let bearer = format!("Bearer {TOKEN}");
        let sig = grafana_signature(&text);
        let mut headers = vec![("authorization", bearer.as_str())];
        if path == "/alerts/grafana" {
            headers.push(("x-grafana-alerting-signature", sig.as_str()));
        }
        self.post_alert(path, &text, &headers).await
    }

    async fn stored(&self) -> Vec<StoredAlert> {
        self.pipeline.store.alerts().await.expect("alerts")
    }
}

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.expect("a JSON answer")
}

/// The stored alerts of key `fingerprint`, oldest first.
fn find<'a>(alerts: &'a [StoredAlert], fingerprint: &str) -> Vec<&'a StoredAlert> {
    alerts
        .iter()
        .filter(|a| a.record.fingerprint == fingerprint)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_s_fixture_is_stored_and_routed_before_its_answer() {
    run_test(|t| {
        Box::pin(async move {
            let app = spawn(t).await;
            let r = app.alert("/alerts/alertmanager", &fixture("alertmanager.json")).await;
            assert_eq!(r.status(), 200);
            assert_eq!(json_of(r).await["alerts"], 3);
            // Stored before the answer: no waiting.
            assert_eq!(app.stored().await.len(), 3);
            let r = app.alert("/alerts/grafana", &fixture("grafana.json")).await;
            assert_eq!(r.status(), 200);
            let r = app
                .alert("/alerts/v2/enqueue", &pd_fixture("pagerduty_trigger.json", PDF_KEY))
                .await;
            assert_eq!(r.status(), 202);
            let answer = json_of(r).await;
            assert_eq!(
                answer,
                json!({"status": "success", "message": "Event processed", "dedup_key": "pdf-stuck-jobs-2026-12-01"})
            );
            let am_pd = pd_fixture("pagerduty_alertmanager.json", CHAT_KEY);
            assert_eq!(app.alert("/alerts/v2/enqueue", &am_pd).await.status(), 202);
            assert_eq!(app.alert("/alerts/generic", &fixture("generic.json")).await.status(), 200);

            let all = app.stored().await;
            assert_eq!(all.len(), 8, "{all:#?}");
            let one = |fp: &str| {
                let a = find(&all, fp);
                assert_eq!(a.len(), 1, "{fp}: {a:#?}");
                a[0].clone()
            };
            let high = one("6f2a1c9d0b3e4f57");
            assert_eq!(
                (high.route.as_str(), high.record.status.as_str(), high.record.level.as_deref(), high.record.opens_incident),
                ("chat", "firing", Some("P1"), true)
            );
            assert_eq!(high.group_key, r#"{alertname="HighErrorRate"}"#);
            assert!(high.record.generator_url.as_deref().unwrap().starts_with("http://prometheus.internal"));
            let slow = one("c3d94e1f7a2b8c60");
            assert_eq!((slow.record.status.as_str(), slow.record.level.as_deref()), ("resolved", Some("P3")));
            let waiting = one("57c6d9296de2ad39");
            assert_eq!((waiting.route.as_str(), waiting.record.format.as_str()), ("queue", "grafana"));
            assert!(waiting.record.silence_url.is_some() && waiting.record.panel_url.is_some());
            let stuck = one("pdf-stuck-jobs-2026-12-01");
            assert_eq!(
                (stuck.route.as_str(), stuck.record.scope.as_str(), stuck.record.level.as_deref()),
                ("pdf", "pagerduty/pdf", Some("SEV3"))
            );
            // Alertmanager's PagerDuty payload: the rules' severity, not "error".
            let via_pd = all.iter().find(|a| a.record.scope == "pagerduty/chat").expect("AM via PD");
            assert_eq!((via_pd.route.as_str(), via_pd.record.level.as_deref()), ("chat", Some("P1")));
            let backup = one("cap-backup-2026-12-01");
            assert_eq!((backup.route.as_str(), backup.record.level.as_deref()), ("cap", Some("P1")));

            let groups = app.pipeline.store.alert_groups().await.expect("groups");
            let slow_group = groups.iter().find(|g| g.id == slow.group_id).unwrap();
            assert_eq!(slow_group.state, "resolved");
            let high_group = groups.iter().find(|g| g.id == high.group_id).unwrap();
            assert_eq!(
                (high_group.state.as_str(), high_group.destinations.as_str(), high_group.msg_key.as_deref()),
                ("firing", "slack:C0CHATALERTS", None)
            );
            app.stop().await;
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_is_one_record_whose_state_changes_and_a_refire_is_a_new_alert() {
    run_test(|t| {
        Box::pin(async move {
            let app = spawn(t).await;
            let mut body = fixture("alertmanager.json");
            for _ in 0..2 {
                assert_eq!(app.alert("/alerts/alertmanager", &body).await.status(), 200);
            }
            let first = app.stored().await;
            assert_eq!(first.len(), 3, "the same three alerts twice: {first:#?}");
            // The first alert resolves: the same record changes.
            body["alerts"][0]["status"] = "resolved".into();
            body["alerts"][0]["endsAt"] = "2026-12-01T22:10:00Z".into();
            assert_eq!(app.alert("/alerts/alertmanager", &body).await.status(), 200);
            let after = app.stored().await;
            let high = find(&after, "6f2a1c9d0b3e4f57");
            assert_eq!(high.len(), 1);
            assert_eq!(
                (high[0].id, high[0].record.status.as_str()),
                (find(&first, "6f2a1c9d0b3e4f57")[0].id, "resolved")
            );
            assert_eq!(high[0].record.ends_at, Some(1_796_163_000_000));
            let groups = app.pipeline.store.alert_groups().await.unwrap();
            let g = groups.iter().find(|g| g.id == high[0].group_id).unwrap();
            assert_eq!(g.state, "resolved", "its group has no open member left");
            // Resolved again (Alertmanager repeats resolved alerts): nothing new.
            assert_eq!(app.alert("/alerts/alertmanager", &body).await.status(), 200);
            assert_eq!(app.stored().await.len(), 3);
            // It fires again: a new alert; the old record stays resolved.
            body["alerts"][0]["status"] = "firing".into();
            assert_eq!(app.alert("/alerts/alertmanager", &body).await.status(), 200);
            let last = app.stored().await;
            let high = find(&last, "6f2a1c9d0b3e4f57");
            let states: Vec<&str> = high.iter().map(|a| a.record.status.as_str()).collect();
            assert_eq!(states, ["resolved", "firing"]);
            let groups = app.pipeline.store.alert_groups().await.unwrap();
            assert_eq!(
                groups.iter().find(|g| g.id == high[1].group_id).unwrap().state,
                "firing"
            );
            app.stop().await;
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_trigger_acknowledge_resolve_and_trigger_again() {
    run_test(|t| {
        Box::pin(async move {
            let app = spawn(t).await;
            // No dedup_key: one is generated and returned.
            let mut trigger = pd_fixture("pagerduty_trigger.json", PDF_KEY);
            trigger.as_object_mut().unwrap().remove("dedup_key");
            let r = app.alert("/alerts/v2/enqueue", &trigger).await;
            assert_eq!(r.status(), 202);
            let key = json_of(r).await["dedup_key"].as_str().expect("a key").to_string();
            assert_eq!(key.len(), 32);
            let event =
                |action: &str| json!({"routing_key": PDF_KEY, "event_action": action, "dedup_key": key});
            for (action, want) in [
                ("acknowledge", "acknowledged"),
                ("trigger", "acknowledged"), // still acknowledged, as in PagerDuty
                ("resolve", "resolved"),
                ("resolve", "resolved"),
            ] {
                let body = if action == "trigger" {
                    let mut t = trigger.clone();
                    t["dedup_key"] = key.clone().into();
                    t
                } else {
                    event(action)
                };
                let r = app.alert("/alerts/v2/enqueue", &body).await;
                assert_eq!(r.status(), 202, "{action}");
                assert_eq!(json_of(r).await["dedup_key"], key.as_str());
                let stored = app.stored().await;
                assert_eq!(stored.len(), 1, "{action}: {stored:#?}");
                assert_eq!(stored[0].record.status, want, "{action}");
                // Acknowledge and resolve carry no summary: the trigger's stays.
                assert_eq!(
                    stored[0].record.title.as_deref(),
                    Some("7 processing_jobs stuck in processing for more than 30 minutes")
                );
            }
            assert!(app.stored().await[0].record.ends_at.is_some());
            trigger["dedup_key"] = key.clone().into();
            assert_eq!(app.alert("/alerts/v2/enqueue", &trigger).await.status(), 202);
            let states: Vec<String> = app.stored().await.into_iter().map(|a| a.record.status).collect();
            assert_eq!(
                states,
                ["resolved", "firing"],
                "after a resolve the key opens a new alert"
            );
            // A resolve of a key never seen is recorded once, as resolved.
            let unseen =
                json!({"routing_key": CHAT_KEY, "event_action": "resolve", "dedup_key": "never-seen"});
            for _ in 0..2 {
                assert_eq!(app.alert("/alerts/v2/enqueue", &unseen).await.status(), 202);
            }
            let stored = app.stored().await;
            let never = find(&stored, "never-seen");
            assert_eq!(never.len(), 1);
            assert_eq!(
                (never[0].record.status.as_str(), never[0].route.as_str()),
                ("resolved", "chat")
            );
            app.stop().await;
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_store_nothing() {
    run_test(|t| {
        Box::pin(async move {
            let app = spawn(t).await;
            let am = fixture("alertmanager.json").to_string();
            for path in ["/alerts/alertmanager", "/alerts/grafana", "/alerts/generic"] {
                for headers in [
                    vec![],
                    vec![("authorization", "Bearer wrong-token")],
                    vec![("authorization", "Basic YWxlcnQ6dG9rZW4=")],
                ] {
                    let r = app.post_alert(path, &am, &headers).await;
                    assert_eq!(r.status(), 401, "{path} {headers:?}");
                    assert_eq!(r.text().await.unwrap(), "", "a bare 401");
                }
            }
            // Grafana: the token alone is not enough while a secret is set.
            let g = fixture("grafana.json").to_string();
            let bearer = format!("Bearer {TOKEN}");
            let wrong_sig = grafana_signature("another body");
            for headers in [
                vec![("authorization", bearer.as_str())],
                vec![("authorization", bearer.as_str()), ("x-grafana-alerting-signature", wrong_sig.as_str())],
            ] {
                assert_eq!(app.post_alert("/alerts/grafana", &g, &headers).await.status(), 401);
            }
            // PagerDuty: an unknown integration key.
            let r = app
                .alert("/alerts/v2/enqueue", &pd_fixture("pagerduty_trigger.json", "nobodyknowsthiskeynobodyknows000"))
                .await;
            assert_eq!(r.status(), 400);
            assert_eq!(
                json_of(r).await,
                json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["invalid routing key"]})
            );
            // Malformed: 400 naming the field.
            let mut bad = fixture("alertmanager.json");
            bad["alerts"][1]["startsAt"] = "yesterday".into();
            let r = app.alert("/alerts/alertmanager", &bad).await;
            assert_eq!(r.status(), 400);
            let answer = json_of(r).await;
            assert_eq!(answer["field"], "alerts[1].startsAt", "{answer}");
            let r = app.alert("/alerts/generic", &json!({"title": "t", "severity": "critical"})).await;
            assert_eq!(r.status(), 400);
            assert!(json_of(r).await["message"].as_str().unwrap().contains("source"));
            let mut pd = pd_fixture("pagerduty_trigger.json", PDF_KEY);
            pd["payload"]["severity"] = "apocalyptic".into();
            pd["event_action"] = "explode".into();
            let r = app.alert("/alerts/v2/enqueue", &pd).await;
            assert_eq!(r.status(), 400);
            let answer = json_of(r).await;
            assert_eq!(answer["status"], "invalid event");
            assert_eq!(answer["errors"].as_array().unwrap().len(), 2, "{answer}");
            let r = app
                .post_alert("/alerts/alertmanager", "{not json", &[("authorization", &bearer)])
                .await;
            assert_eq!(r.status(), 400);
            // Over 512 KB: 413 from the edge.
            let mut big = fixture("generic.json");
            big["labels"]["padding"] = "x".repeat(513 * 1024).into();
            assert_eq!(app.alert("/alerts/generic", &big).await.status(), 413);
            assert_eq!(app.alert("/alerts/v2/enqueue", &big).await.status(), 413);
            assert!(app.stored().await.is_empty());
            assert!(app.pipeline.store.alert_groups().await.unwrap().is_empty());
            app.stop().await;
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_every_alert_endpoint_refuses() {
    let t = TestStore::sqlite().await;
    let app = TestApp::spawn_with_edge(t.store.clone(), edge(false)).await;
    let bearer = format!("Bearer {TOKEN}");
    for path in ["/alerts/alertmanager", "/alerts/grafana", "/alerts/generic"] {
        let r = app.post_alert(path, "{}", &[("authorization", &bearer)]).await;
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = app
        .alert(
            "/alerts/v2/enqueue",
            &pd_fixture("pagerduty_trigger.json", PDF_KEY),
        )
        .await;
    assert_eq!(r.status(), 400, "no integration keys: every key is unknown");
    assert!(app.stored().await.is_empty());
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_signatures_with_a_timestamp_cover_it() {
    use hmac::{Hmac, Mac};
    let t = TestStore::sqlite().await;
    let app = spawn(&t).await;
    let body = fixture("grafana.json").to_string();
    let bearer = format!("Bearer {TOKEN}");
    let sign = |ts: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(GRAFANA_SECRET.as_bytes()).unwrap();
        mac.update(format!("{ts}:{body}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let now = app.now_secs().to_string();
    let stale = (app.now_secs() - 3600).to_string();
    for (ts, want) in [(stale.as_str(), 401), (now.as_str(), 200)] {
        let sig = sign(ts);
        let headers = [
            ("authorization", bearer.as_str()),
            ("x-grafana-alerting-signature", sig.as_str()),
            ("x-grafana-alerting-timestamp", ts),
        ];
        assert_eq!(
            app.post_alert("/alerts/grafana", &body, &headers).await.status(),
            want,
            "{ts}"
        );
    }
    assert_eq!(app.stored().await.len(), 2);
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_answers_503_so_senders_retry() {
    run_test(|t| {
        Box::pin(async move {
            let app = spawn(t).await;
            app.pipeline.store.close().await;
            let r = app
                .alert("/alerts/alertmanager", &fixture("alertmanager.json"))
                .await;
            assert_eq!(r.status(), 503);
            assert!(r.headers().contains_key("retry-after"));
            assert_eq!(json_of(r).await["status"], "unavailable");
            let r = app
                .alert(
                    "/alerts/v2/enqueue",
                    &pd_fixture("pagerduty_trigger.json", PDF_KEY),
                )
                .await;
            assert_eq!(r.status(), 503);
            let fresh = t.reopen().await;
            assert!(fresh.alerts().await.unwrap().is_empty());
            fresh.close().await;
            app.stop().await;
        })
    })
    .await;
}

/// A tree where `team="db"` alerts land in two routes (`continue`), one of
/// them grouping by every label (each alert its own group).
const TWO_ROUTES: &str = r#"
[alerts]
group_by = ["alertname"]
to = ["slack:CROOT"]

[[alerts.routes]]
continue = true
match = ['team="db"']
name = "db"
to = ["discord:42"]

[[alerts.routes]]
group_by = ["..."]
match = ['team=~"db"']
name = "each"
to = ["slack:CDB"]
"#;

fn tree(text: &str) -> opsbot::alerts::route::RouteTree {
    let config = Config::parse(Path::new("c.toml"), text, &HashMap::new()).expect("config");
    let roles = opsbot::auth::Roles::new(&config.roles).names();
    let (policies, _) = app::policies(&config, &roles);
    let (tree, problems) = app::alert_routes(&config, &policies);
    assert!(problems.is_empty(), "{problems:#?}");
    tree
}

/// An Alertmanager notification of `n` db alerts, all with `status`.
fn notification(n: usize, status: &str) -> Vec<u8> {
    let alerts: Vec<Value> = (0..n)
        .map(|i| json!({"status": status, "labels": {"alertname": "A", "team": "db", "instance": format!("i{i}")}}))
        .collect();
    json!({"version": "4", "alerts": alerts}).to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_in_several_groups_is_stored_and_resolved_whole() {
    run_test(|t| {
        Box::pin(async move {
            let tree = tree(TWO_ROUTES);
            let store = &t.store;
            let ingest = |status: &'static str, now: i64| {
                let alerts = opsbot::alerts::alertmanager::parse(&notification(1000, status)).expect("parse");
                let batch = opsbot::alerts::placed(&alerts, &tree, now);
                async move { store.ingest_alerts(&batch, now).await.expect("ingest") }
            };
            // 1,000 alerts × 2 routes: 2,000 records in 1,001 groups,
            // more rows than one statement takes.
            assert_eq!(ingest("firing", 1_000).await, 1001);
            let all = store.alerts().await.unwrap();
            assert_eq!(all.len(), 2000);
            let groups = store.alert_groups().await.unwrap();
            assert_eq!(groups.len(), 1001);
            assert!(groups.iter().all(|g| g.state == "firing"));
            let db = groups.iter().find(|g| g.route == "db").unwrap();
            assert_eq!(
                (db.destinations.as_str(), db.group_key.as_str()),
                ("discord:42", r#"{alertname="A"}"#)
            );
            // Again: nothing new, last seen moves.
            ingest("firing", 2_000).await;
            let again = store.alerts().await.unwrap();
            assert_eq!(again.len(), 2000);
            assert!(again
                .iter()
                .all(|a| a.last_seen_at == 2_000 && a.changed_at == 1_000));
            // All resolve: every record of both routes, every group.
            ingest("resolved", 3_000).await;
            let done = store.alerts().await.unwrap();
            assert_eq!(done.len(), 2000);
            assert!(done
                .iter()
                .all(|a| a.record.status == "resolved" && a.changed_at == 3_000));
            assert!(
                done.iter().all(|a| a.record.ends_at == Some(3_000)),
                "ended when the resolve came"
            );
            let groups = store.alert_groups().await.unwrap();
            assert!(groups.iter().all(|g| g.state == "resolved"));
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_one_batch_the_last_entry_of_a_key_wins() {
    run_test(|t| {
        Box::pin(async move {
            let tree = tree(TWO_ROUTES);
            let body = json!({"version": "4", "alerts": [
                {"status": "firing", "labels": {"alertname": "B"}, "fingerprint": "f1"},
                {"status": "resolved", "labels": {"alertname": "B"}, "fingerprint": "f1"},
                {"status": "firing", "labels": {"alertname": "B"}, "fingerprint": "f2"},
            ]});
            let alerts = opsbot::alerts::alertmanager::parse(body.to_string().as_bytes()).unwrap();
            let batch = opsbot::alerts::placed(&alerts, &tree, 5);
            t.store.ingest_alerts(&batch, 5).await.unwrap();
            let all = t.store.alerts().await.unwrap();
            let states: Vec<(&str, &str, &str)> = all
                .iter()
                .map(|a| {
                    (
                        a.route.as_str(),
                        a.record.fingerprint.as_str(),
                        a.record.status.as_str(),
                    )
                })
                .collect();
            assert_eq!(states, [("root", "f1", "resolved"), ("root", "f2", "firing")]);
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_s_state_follows_its_members_whatever_a_batch_mixes() {
    run_test(|t| {
        Box::pin(async move {
            let tree = tree(TWO_ROUTES);
            let store = &t.store;
            // One group per alertname; (status, fingerprint) per alert.
            let ingest = |at: i64, alerts: &[(&str, &str, &str)]| {
                let alerts: Vec<Value> = alerts
                    .iter()
                    .map(|(name, status, fp)| json!({"status": status, "labels": {"alertname": name}, "fingerprint": fp}))
                    .collect();
                let parsed =
                    opsbot::alerts::alertmanager::parse(json!({"version": "4", "alerts": alerts}).to_string().as_bytes())
                        .unwrap();
                let batch = opsbot::alerts::placed(&parsed, &tree, at);
                async move { store.ingest_alerts(&batch, at).await.unwrap() }
            };
            let states = || async {
                let mut s: Vec<(String, String)> = store
                    .alert_groups()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|g| (g.group_key, g.state))
                    .collect();
                s.sort();
                s
            };
            let key = |n: &str| format!("{{alertname=\"{n}\"}}");
            // New groups: C has only the resolve of a key never seen.
            ingest(1, &[("A", "firing", "a1"), ("B", "firing", "b1"), ("C", "resolved", "c1")]).await;
            assert_eq!(
                states().await,
                [(key("A"), "firing".into()), (key("B"), "firing".into()), (key("C"), "resolved".into())]
            );
            // A: one member resolves as another fires; B: its only member
            // resolves; C: a member fires in its resolved group.
            ingest(2, &[("A", "resolved", "a1"), ("A", "firing", "a2"), ("B", "resolved", "b1"), ("C", "firing", "c2")])
                .await;
            assert_eq!(
                states().await,
                [(key("A"), "firing".into()), (key("B"), "resolved".into()), (key("C"), "firing".into())]
            );
            // A trigger-only batch reopens B; A's last open member resolves.
            ingest(3, &[("B", "firing", "b2")]).await;
            ingest(4, &[("A", "resolved", "a2")]).await;
            assert_eq!(
                states().await,
                [(key("A"), "resolved".into()), (key("B"), "firing".into()), (key("C"), "firing".into())]
            );
        })
    })
    .await;
}

/// Where PagerDuty's Python client (`pagerduty` on PyPI) is importable:
/// already installed, or installed here once per target dir. `None` (the
/// test skips, saying why) when Python or pip is unavailable.
fn pagerduty_python() -> Option<String> {
    use std::process::Command;
    let importable = |path: &str| {
        Command::new("python3")
            .args(["-c", "import pagerduty; pagerduty.EventsApiV2Client"])
            .env("PYTHONPATH", path)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let dir = format!("{}/pagerduty-python", env!("CARGO_TARGET_TMPDIR"));
    if importable(&dir) {
        return Some(dir);
    }
    let installed = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            &dir,
            "pagerduty",
        ])
        .output();
    match installed {
        Ok(o) if o.status.success() && importable(&dir) => Some(dir),
        Ok(o) => {
            eprintln!(
                "SKIPPED: PagerDuty's Python client could not be installed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: no python3 to run PagerDuty's Python client: {e}");
            None
        }
    }
}

/// Runs PagerDuty's own client against opsbot: `action` (trigger,
/// acknowledge, resolve) with `key`; prints what the client returned.
fn pagerduty_client(pythonpath: &str, base_url: &str, routing_key: &str, action: &str, key: &str) -> String {
    const SCRIPT: &str = r#"
import sys, pagerduty
base, routing_key, action, key = sys.argv[1:5]
client = pagerduty.EventsApiV2Client(routing_key)
# The client insists on https:// for base_url; the test server speaks plain
# HTTP, so point its private base URL there (everything else is the client's).
client._url = base
try:
    if action == "trigger":
        print(client.trigger("Disk above 95 % on the PDF host", "pdf-host", severity="critical",
                             custom_details={"disk_percent": 96}))
    elif action == "acknowledge":
        print(client.acknowledge(key))
    else:
        print(client.resolve(key))
except pagerduty.Error as e:
    print("refused", getattr(getattr(e, "response", None), "status_code", None))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT, base_url, routing_key, action, key])
        .env("PYTHONPATH", pythonpath)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_s_python_client_triggers_acknowledges_and_resolves() {
    let Some(pythonpath) = tokio::task::spawn_blocking(pagerduty_python).await.unwrap() else {
        return;
    };
    let t = TestStore::sqlite().await;
    let app = spawn(&t).await;
    let base = format!("{}/alerts", app.url);
    let client = |key: &'static str, action: &'static str, dedup: String| {
        let (path, base) = (pythonpath.clone(), base.clone());
        tokio::task::spawn_blocking(move || pagerduty_client(&path, &base, key, action, &dedup))
    };
    let key = client(PDF_KEY, "trigger", String::new()).await.unwrap();
    assert_eq!(key.len(), 32, "the generated dedup key: {key}");
    let status = |all: Vec<StoredAlert>| all.into_iter().map(|a| a.record.status).collect::<Vec<_>>();
    let stored = app.stored().await;
    assert_eq!(stored[0].record.fingerprint, key);
    assert_eq!(
        (stored[0].route.as_str(), stored[0].record.level.as_deref()),
        ("pdf", Some("SEV1"))
    );
    assert_eq!(client(PDF_KEY, "acknowledge", key.clone()).await.unwrap(), key);
    assert_eq!(status(app.stored().await), ["acknowledged"]);
    assert_eq!(client(PDF_KEY, "resolve", key.clone()).await.unwrap(), key);
    assert_eq!(status(app.stored().await), ["resolved"]);
    let refused = client("abcdefabcdefabcdefabcdefabcdef00", "trigger", String::new());
    assert_eq!(refused.await.unwrap(), "refused 400");
    assert_eq!(app.stored().await.len(), 1);
    app.stop().await;
    t.cleanup().await;
}

/// An alert group's message is posted once in its routed channel and edited
/// in place as its alerts resolve, never re-posted.
#[tokio::test]
async fn a_group_is_posted_once_and_edited_as_its_alerts_resolve() {
    run_test(|t| {
        Box::pin(async move {
            let app = spawn(t).await;
            let mut body = fixture("alertmanager.json");
            assert_eq!(app.alert("/alerts/alertmanager", &body).await.status(), 200);
            let has = |c: &crate::fake_slack::Call, what: &str| c.text().is_some_and(|t| t.contains(what));
            let calls = app
                .slack
                .wait_until(
                    std::time::Duration::from_secs(5),
                    |calls| {
                        calls
                            .iter()
                            .any(|c| c.method == "chat.postMessage" && has(c, "HighErrorRate"))
                    },
                    "the group's message",
                )
                .await;
            let post = calls
                .iter()
                .find(|c| c.method == "chat.postMessage" && has(c, "HighErrorRate"))
                .unwrap();
            let ts = post.ts.clone().expect("posted");
            assert!(post.text().unwrap().starts_with("🔥 "), "{:?}", post.text());
            let groups = app.pipeline.store.alert_groups().await.unwrap();
            let routed = format!("slack:{}", post.channel().unwrap());
            assert!(
                groups
                    .iter()
                    .any(|g| g.destinations.split(',').any(|d| d == routed)),
                "in a routed channel: {groups:?}"
            );
            // It resolves: the same message is edited.
            body["alerts"][0]["status"] = "resolved".into();
            body["alerts"][0]["endsAt"] = "2026-12-01T22:10:00Z".into();
            assert_eq!(app.alert("/alerts/alertmanager", &body).await.status(), 200);
            let calls = app
                .slack
                .wait_until(
                    std::time::Duration::from_secs(5),
                    |calls| {
                        calls.iter().any(|c| {
                            c.method == "chat.update"
                                && c.body["ts"] == ts.as_str()
                                && has(c, "✓ HighErrorRate")
                        })
                    },
                    "the message edited to show the resolve",
                )
                .await;
            let posts = calls
                .iter()
                .filter(|c| c.method == "chat.postMessage" && has(c, "HighErrorRate"))
                .count();
            assert_eq!(posts, 1, "never re-posted");
            app.settle().await;
            app.stop().await;
        })
    })
    .await;
}

/// chat's scale with every level paging alice; cards in Slack C_INC.
pub(crate) const CHAT_POLICY: &str = r#"
[policies.chat]
scale = ["P1", "P2", "P3", "P4"]
channel = "slack:C_INC"

[policies.chat.P1]
ack = "15m"
steps = [{ after = "0s", to = ["person:alice"], stop = "ack" }]

[policies.chat.P2]
ack = "1h"
steps = [{ after = "0s", to = ["person:alice"], stop = "ack" }]

[policies.chat.P3]
ack = "4h"
steps = [{ after = "0s", to = ["person:alice"], stop = "ack" }]

[policies.chat.P4]
ack = "24h"
steps = [{ after = "0s", to = ["person:alice"], stop = "ack" }]
"#;

/// A critical alert (at the chat route's P1 threshold) opens one incident
/// for its group, which pages; when every alert of the group resolves, the
/// incident resolves. Warnings open none.
#[tokio::test]
async fn a_critical_group_opens_an_incident_that_resolves_with_it() {
    run_test(|t| {
        Box::pin(async move {
            let app = TestApp::spawn_with_edge_and_config(t.store.clone(), edge(true), CHAT_POLICY).await;
            let mut body = fixture("alertmanager.json");
            for _ in 0..2 {
                assert_eq!(app.alert("/alerts/alertmanager", &body).await.status(), 200);
            }
            let store = app.pipeline.store.clone();
            crate::support::eventually("incidents opened for the critical groups", || {
                let store = store.clone();
                async move {
                    let open = store.open_incidents().await.unwrap();
                    open.iter().any(|i| i.title == "HighErrorRate")
                        && open.iter().any(|i| i.title == "DatabaseConnectionFailure")
                }
            })
            .await;
            let open = store.open_incidents().await.unwrap();
            assert_eq!(
                open.len(),
                2,
                "one per critical group, the warning none, twice posted once: {open:#?}"
            );
            let high = open.iter().find(|i| i.title == "HighErrorRate").unwrap().clone();
            assert_eq!((high.profile.as_str(), high.level.as_str()), ("chat", "P1"));
            app.slack
                .wait_until(
                    std::time::Duration::from_secs(5),
                    |calls| {
                        calls.iter().any(|c| {
                            c.text()
                                .is_some_and(|t| t.starts_with("📟") && t.ends_with("<@U0ALICE>"))
                        })
                    },
                    "a page for the incident",
                )
                .await;
            // HighErrorRate resolves: its incident resolves, the other stays open.
            body["alerts"][0]["status"] = "resolved".into();
            body["alerts"][0]["endsAt"] = "2026-12-01T22:10:00Z".into();
            assert_eq!(app.alert("/alerts/alertmanager", &body).await.status(), 200);
            crate::support::eventually("the incident resolved with its alerts", || {
                let store = store.clone();
                async move {
                    store
                        .incident(high.id)
                        .await
                        .unwrap()
                        .is_some_and(|i| i.state == opsbot::incident::State::Resolved)
                }
            })
            .await;
            let open = store.open_incidents().await.unwrap();
            assert_eq!(open.len(), 1, "{open:#?}");
            let events = store.incident_events(high.id).await.unwrap();
            assert!(
                events
                    .iter()
                    .any(|e| e.kind == "resolved" && e.text.contains("every alert of alert group")),
                "{events:?}"
            );
            app.settle().await;
            app.stop().await;
        })
    })
    .await;
}

/// PagerDuty's `acknowledge` of an alert whose group opened an incident
/// acks the incident: the integration is the actor on its timeline, its
/// escalation stops (no pending step), its card says so.
#[tokio::test]
async fn a_pagerduty_acknowledge_acks_the_group_s_incident() {
    run_test(|t| {
        Box::pin(async move {
            let app = TestApp::spawn_with_edge_and_config(t.store.clone(), edge(true), CHAT_POLICY).await;
            let event = |action: &str| {
                json!({
                    "routing_key": CHAT_KEY,
                    "event_action": action,
                    "dedup_key": "chat-5xx",
                    "payload": {"summary": "5xx above 5% on chat", "source": "chat-api", "severity": "critical"}
                })
            };
            let r = app.post_alert("/alerts/v2/enqueue", &event("trigger").to_string(), &[]).await;
            assert_eq!(r.status(), 202);
            let store = app.pipeline.store.clone();
            crate::support::eventually("the incident opened", || {
                let store = store.clone();
                async move { store.open_incidents().await.unwrap().len() == 1 }
            })
            .await;
            let inc = store.open_incidents().await.unwrap().remove(0);
            assert_eq!(inc.state, opsbot::incident::State::Open);
            let r = app.post_alert("/alerts/v2/enqueue", &event("acknowledge").to_string(), &[]).await;
            assert_eq!(r.status(), 202);
            crate::support::eventually("the incident acked by the integration", || {
                let store = store.clone();
                async move {
                    store.incident(inc.id).await.unwrap().is_some_and(|i| {
                        i.state == opsbot::incident::State::Acked && i.acked_by.as_deref() == Some("pagerduty/chat")
                    })
                }
            })
            .await;
            let events = store.incident_events(inc.id).await.unwrap();
            assert!(
                events.iter().any(|e| e.kind == "ack" && e.person == "pagerduty/chat"),
                "{events:?}"
            );
            let step = store
                .timer_due(opsbot::store::INCIDENT_STEP, &inc.id.to_string())
                .await
                .unwrap();
            assert_eq!(step, None, "escalation stopped");
            app.slack
                .wait_until(
                    std::time::Duration::from_secs(5),
                    |calls| {
                        let card = calls.iter().any(|c| {
                            c.method == "chat.update"
                                && c.text().is_some_and(|t| t.starts_with("🔴 P1"))
                                && c.body.to_string().contains("pagerduty/chat")
                        });
                        let thread = calls
                            .iter()
                            .any(|c| c.text() == Some("✅ acknowledged by pagerduty/chat"));
                        card && thread
                    },
                    "the card edited and the thread told of the ack",
                )
                .await;
            // Resolving it later resolves the incident as before.
            let r = app.post_alert("/alerts/v2/enqueue", &event("resolve").to_string(), &[]).await;
            assert_eq!(r.status(), 202);
            crate::support::eventually("the incident resolved", || {
                let store = store.clone();
                async move {
                    store
                        .incident(inc.id)
                        .await
                        .unwrap()
                        .is_some_and(|i| i.state == opsbot::incident::State::Resolved)
                }
            })
            .await;
            app.settle().await;
            app.stop().await;
        })
    })
    .await;
}
