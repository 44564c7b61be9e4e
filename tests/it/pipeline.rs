//! Commands without approval, permissions and errors through the pipeline.

use crate::support::{both, clock, config, dead_url, pipeline, pipeline_with, say, FakeTarget};
use opsbot::engine::Outcome;

#[tokio::test]
async fn read_command_runs_at_once_and_is_audited() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline(t.store.clone(), &target.url, clock());
        let r = say(&p, "console:dave", "/queue stats").await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert!(r.text.contains("\"failed\": 37"), "{}", r.text);
        assert_eq!(target.count("GET", "/api/queue/stats"), 1);
        let records = t.store.audit_records().await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].entry.kind.as_str(), records[0].entry.outcome.as_str()),
            ("execution", "succeeded")
        );
        assert_eq!(records[0].entry.command.as_deref(), Some("queue:queue stats"));
        t.cleanup().await;
    }
}

#[tokio::test]
async fn write_command_without_approval_runs_for_oncall_only() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline(t.store.clone(), &target.url, clock());
        let r = say(&p, "console:dave", "/queue pause ai-analysis").await;
        assert_eq!(
            (r.outcome, r.text.as_str()),
            (
                Outcome::NotPermitted,
                "refused: `/queue pause` needs one of these roles: oncall"
            )
        );
        assert_eq!(target.count("POST", "/api/queue/ai-analysis/pause"), 0);
        let r = say(&p, "console:alice", "/queue pause ai-analysis").await;
        assert_eq!(
            (r.outcome, r.text.as_str()),
            (Outcome::Done, "Paused ai-analysis")
        );
        assert_eq!(target.count("POST", "/api/queue/ai-analysis/pause"), 1);
        let kinds = crate::support::audit_kinds(&t.store).await;
        assert_eq!(kinds, ["denied", "execution"]);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn strangers_may_read_public_commands_only() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline(t.store.clone(), &target.url, clock());
        let r = say(&p, "slack:U0STRANGER", "/queue stats").await;
        assert_eq!(r.outcome, Outcome::Done);
        let r = say(&p, "slack:U0STRANGER", "/queue retry ai-analysis").await;
        assert_eq!(r.outcome, Outcome::NotPermitted);
        assert!(
            r.text.contains("slack:U0STRANGER") && r.text.contains("[people."),
            "says how to be added: {}",
            r.text
        );
        let r = say(&p, "slack:U0STRANGER", "/approve a1").await;
        assert_ne!(r.outcome, Outcome::Done);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn typos_get_help_and_store_nothing() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline(t.store.clone(), &target.url, clock());
        let r = say(&p, "console:alice", "/queue retyr ai-analysis").await;
        assert_eq!(r.outcome, Outcome::Usage);
        assert!(r.text.contains("/queue retry"), "did you mean: {}", r.text);
        let r = say(&p, "console:alice", "/queue pause ai-analysys").await;
        assert_eq!(r.outcome, Outcome::Usage);
        assert!(r.text.contains("ai-analysis"), "{}", r.text);
        let r = say(&p, "console:alice", "/help").await;
        assert_eq!(r.outcome, Outcome::Done);
        assert!(
            r.text.contains("/queue retry") && r.text.contains("/approve"),
            "{}",
            r.text
        );
        assert!(t.store.audit_records().await.unwrap().is_empty());
        assert!(target.hits.lock().unwrap().is_empty());
        t.cleanup().await;
    }
}

#[tokio::test]
async fn unreachable_target_reply_names_it() {
    for t in both().await {
        let p = pipeline(t.store.clone(), &dead_url().await, clock());
        let r = say(&p, "console:alice", "/queue pause ai-analysis").await;
        assert_eq!(r.outcome, Outcome::Failed);
        assert!(r.text.contains("queue_api"), "{}", r.text);
        let rec = t.store.audit_records().await.unwrap();
        assert_eq!(rec[0].entry.outcome, "failed");
        t.cleanup().await;
    }
}

#[tokio::test]
async fn ops_health_reports_components() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline(t.store.clone(), &target.url, clock());
        // C_QUEUE is bound to the queue profile, so `/ops health` needs no --sys.
        let r = say(&p, "slack:U0STRANGER", "/ops health").await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert!(r.text.contains("queue api"), "{}", r.text);
        assert!(r.text.to_lowercase().contains("healthy"), "{}", r.text);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn metrics_count_requests_and_approvals() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline(t.store.clone(), &target.url, clock());
        say(&p, "console:alice", "/queue retry ai-analysis").await;
        say(&p, "console:alice", "/nope").await;
        let text = p
            .metrics
            .render(&opsbot::metrics::StoreGauges::read(&t.store).await);
        assert!(
            text.contains("opsbot_requests_total{outcome=\"approval_requested\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("opsbot_requests_total{outcome=\"usage\"} 1"),
            "{text}"
        );
        assert!(text.contains("opsbot_approvals{state=\"pending\"} 1"), "{text}");
        t.cleanup().await;
    }
}

#[tokio::test]
async fn cache_info_reads_the_real_redis() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let mut cfg = config("");
        cfg.channels.insert("C_QUEUE".into(), "queue".into());
        let mut p = pipeline_with(&cfg, t.store.clone(), &target.url, clock());
        let mut cat = (*p.catalog).clone();
        cat.targets.get_mut("queue_redis").unwrap().url = redis;
        p.catalog = std::sync::Arc::new(cat);
        let r = say(&p, "console:alice", "/cache info memory").await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert!(r.text.contains("used_memory"), "{}", r.text);
        let r = say(&p, "console:alice", "/cache info bogus").await;
        assert_eq!(r.outcome, Outcome::Usage);
        assert!(r.text.contains("memory"), "lists the sections: {}", r.text);
        let r = say(&p, "slack:U0STRANGER", "/cache info").await;
        assert_eq!(r.outcome, Outcome::NotPermitted, "oncall only: {}", r.text);
        t.cleanup().await;
    }
}
