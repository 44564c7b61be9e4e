//! The shipped commands of the `scrape` profile (seed 001): each one parsed,
//! authorized and rendered for a sample invocation (one snapshot), then run
//! through the pipeline against a fake of the backend API. The profile's job
//! ids are the only values typed in chat: the `id` kind refuses slashes,
//! spaces and quotes, and a `..` that it lets through is refused as a path
//! segment before anything is sent. The MongoDB rows have no executor yet.

use crate::support::{
    assert_each_sends, clock, config_enabling, pipeline_for, render_cases, requests, say_in,
    shipped_catalog_env, FakeApi, TestStore,
};
use opsbot::catalog::Catalog;
use opsbot::config::Config;
use opsbot::engine::Outcome;
use serde_json::json;

/// A scrape channel bound to the profile, with scrape enabled besides queue and chat.
fn cfg() -> Config {
    config_enabling("[channels.C_SCRAPE]\nprofile = \"scrape\"\n", "scrape")
}

/// The shipped catalog with the scrape API at `api`.
fn catalog(api: &str) -> Catalog {
    shipped_catalog_env(&cfg(), &[("OPSBOT_TARGET_SCRAPE_API", api)])
}

#[test]
fn every_scrape_command_parses_authorizes_and_renders() {
    let catalog = catalog("http://127.0.0.1:1");
    let cases = [
        ("slack:U0STRANGER", "/ops health"),
        ("slack:U0STRANGER", "/ops health database"),
        ("slack:U0STRANGER", "/ops status"),
        ("console:dave", "/ops status"),
        ("console:dave", "/ops metrics"),
        ("console:dave", "/ops metrics --hours 6"),
        ("console:dave", "/ops errors"),
        ("console:dave", "/ops perf"),
        ("slack:U0STRANGER", "/scrape queue"),
        ("console:dave", "/scrape jobs"),
        ("console:dave", "/scrape job 81"),
        ("console:dave", "/scrape job \"81/stop\""),
        ("console:dave", "/scrape job \"../queue/clear\""),
        ("console:dave", "/scrape job .."),
        ("console:dave", "/scrape system"),
        ("console:dave", "/scrape pause 81"),
        ("console:alice", "/scrape pause 81"),
        ("console:alice", "/scrape pause \"81; rm -rf /\""),
        ("console:alice", "/scrape stop job-86"),
        ("console:alice", "/scrape stop ."),
        ("console:alice", "/scrape stop-all"),
        ("console:alice", "/scrape clear-queue"),
        ("console:dave", "/scrape clear-queue"),
        ("slack:U0STRANGER", "/ai health"),
    ];
    insta::assert_snapshot!(render_cases(&catalog, &cfg(), "scrape", &cases));
}

/// The backend of seed 001: healthy except a degraded AI service.
async fn fake_scrape() -> FakeApi {
    let healthy = json!({"status": "healthy"});
    FakeApi::start(&[
        ("GET", "/api/production/health", healthy.clone()),
        ("GET", "/api/production/health/database", healthy.clone()),
        (
            "GET",
            "/api/production/health/ai_services",
            json!({"status": "degraded", "services": {"gemini": "healthy", "groq": {"status": "down", "error": "429 quota"}}}),
        ),
        ("GET", "/api/production/health/scraping_engine", healthy),
        ("GET", "/api/production/status", json!({"backend": "running"})),
        (
            "GET",
            "/api/production/metrics",
            json!({"cpu_percent": 91.5, "memory_percent": 62.0, "disk_percent": 40.1}),
        ),
        ("GET", "/api/production/errors/stats", json!({"error_rate_1h": 7.5})),
        (
            "GET",
            "/api/production/errors/dashboard",
            json!({"top_errors": [{"type": "timeout", "count": 3}]}),
        ),
        ("GET", "/api/production/performance/metrics", json!({"performance_metrics": {}})),
        ("GET", "/api/scraping/queue-status", json!({"queued": 14, "running": 6})),
        ("GET", "/api/scraping/jobs", json!({"jobs": [{"id": "81", "state": "running"}]})),
        ("GET", "/api/scraping/jobs/81", json!({"id": "81", "state": "running"})),
        ("GET", "/api/scraping/system-status", json!({"engine": "ready"})),
        ("PUT", "/api/scraping/jobs/81/pause", json!({"paused": true})),
        ("PUT", "/api/scraping/jobs/job-86/stop", json!({"stopped": true})),
    ])
    .await
}

#[tokio::test]
async fn http_commands_run_through_the_pipeline() {
    let t = TestStore::sqlite().await;
    let api = fake_scrape().await;
    let p = pipeline_for(&cfg(), catalog(&api.url), t.store.clone(), clock());
    let r = say_in(&p, "C_SCRAPE", "slack:U0STRANGER", "/ops health").await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines[0], "overall: unhealthy", "{}", r.text);
    for component in [
        "✅ backend healthy",
        "✅ database healthy",
        "⚠️ ai services degraded",
        "✅ scraping engine healthy",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(component)),
            "{component}: {}",
            r.text
        );
    }
    assert!(
        r.text.contains("\n    ❌ groq unhealthy: 429 quota"),
        "{}",
        r.text
    );
    let r = say_in(&p, "C_SCRAPE", "console:dave", "/ops metrics").await;
    assert!(
        r.text
            .starts_with("cpu 91.5 % (alert above 85) · memory 62.0 % · disk 40.1 %\n"),
        "{}",
        r.text
    );
    api.take();
    let r = say_in(&p, "C_SCRAPE", "console:dave", "/ops errors").await;
    assert!(
        r.text.starts_with(
            "error_rate_1h 7.5 (P3 at 5–10, P2 above 10)\n✓ 1/2 GET /api/production/errors/stats → 200"
        ),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("\n✓ 2/2 GET /api/production/errors/dashboard → 200")
            && r.text.contains("timeout"),
        "{}",
        r.text
    );
    assert_eq!(
        requests(&api.take()),
        [
            ("GET".to_string(), "/api/production/errors/stats".to_string()),
            ("GET".to_string(), "/api/production/errors/dashboard".to_string()),
        ]
    );
    let sends = [
        ("console:dave", "/ops status", "GET", "/api/production/status"),
        (
            "console:dave",
            "/ops perf",
            "GET",
            "/api/production/performance/metrics",
        ),
        (
            "slack:U0STRANGER",
            "/scrape queue",
            "GET",
            "/api/scraping/queue-status",
        ),
        ("console:dave", "/scrape jobs", "GET", "/api/scraping/jobs"),
        ("console:dave", "/scrape job 81", "GET", "/api/scraping/jobs/81"),
        (
            "console:dave",
            "/scrape system",
            "GET",
            "/api/scraping/system-status",
        ),
        (
            "console:alice",
            "/scrape pause 81",
            "PUT",
            "/api/scraping/jobs/81/pause",
        ),
        (
            "console:alice",
            "/scrape stop job-86",
            "PUT",
            "/api/scraping/jobs/job-86/stop",
        ),
        (
            "slack:U0STRANGER",
            "/ai health",
            "GET",
            "/api/production/health/ai_services",
        ),
    ];
    assert_each_sends(&p, "C_SCRAPE", &api, &sends).await;
    // Refused values never reach the API.
    for (who, text) in [
        ("console:dave", "/scrape pause 81"),
        ("console:alice", "/scrape stop .."),
        ("console:alice", "/scrape stop \"81/../../queue/clear\""),
    ] {
        let r = say_in(&p, "C_SCRAPE", who, text).await;
        assert_ne!(r.outcome, Outcome::Done, "{text}: {}", r.text);
    }
    assert_eq!(api.take(), []);
    t.cleanup().await;
}
