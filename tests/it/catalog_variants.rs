//! Commands whose action depends on an enum argument's value (`variants`):
//! SEC-8 (pdf), SEC-9 (chat, pdf) and AI-2 (scrape). Every variant is
//! rendered (one snapshot, with values the enum refuses), the http one runs
//! through the pipeline against a fake of the scraping backend (the seed's
//! fixed payload per endpoint), the process ones against stand-ins that
//! record their argv and working directory.

use crate::support::{
    args, clock, config, pipeline_for, render_sections, say_in, shipped_catalog_env, FakeApi, StandIns,
    TestStore,
};
use opsbot::catalog::Catalog;
use opsbot::config::Config;
use opsbot::engine::Outcome;
use serde_json::json;

/// Every profile enabled, a scrape channel, and a person in the security role.
fn cfg() -> Config {
    let mut c = config(
        "[channels.C_SCRAPE]\nprofile = \"scrape\"\n\n[people.sam]\nconsole = \"sam\"\nroles = [\"security\"]\n",
    );
    c.profiles.extend(["cap", "scrape", "pdf"].map(String::from));
    c
}

/// The shipped catalog with the scrape API at `api` and every app directory `dir`.
fn catalog(api: &str, dir: &str) -> Catalog {
    let env = [
        ("OPSBOT_TARGET_SCRAPE_API", api),
        ("OPSBOT_VALUE_PDF_APP_DIR", dir),
        ("OPSBOT_VALUE_CHAT_APP_DIR", dir),
    ];
    shipped_catalog_env(&cfg(), &env)
}

#[test]
fn every_variant_parses_authorizes_and_renders() {
    let catalog = catalog("http://127.0.0.1:1", "/srv/app");
    let per_profile: [(&str, &[(&str, &str)]); 3] = [
        (
            "pdf",
            &[
                ("console:sam", "/security collect logs"),
                ("console:sam", "/security collect logs --period 7d"),
                ("console:sam", "/security collect access"),
                ("console:sam", "/security collect report"),
                ("console:sam", "/security collect access --period 1h"),
                ("console:sam", "/security collect \"logs; rm -rf /\""),
                ("console:sam", "/security collect logs --period \"24h --all\""),
                ("console:alice", "/security collect logs"),
                ("console:alice", "/security scan"),
                ("console:alice", "/security scan deps"),
                ("console:alice", "/security scan outdated"),
                ("console:alice", "/security scan app"),
                ("console:alice", "/security scan secrets"),
                ("console:alice", "/security scan \"deps --fix\""),
                ("console:dave", "/security scan"),
            ],
        ),
        (
            "chat",
            &[
                ("console:alice", "/security scan"),
                ("console:alice", "/security scan outdated"),
                ("console:alice", "/security scan secrets"),
            ],
        ),
        (
            "scrape",
            &[
                ("console:alice", "/ai test generate"),
                ("console:alice", "/ai test feedback"),
                ("console:alice", "/ai test \"generate/../../admin\""),
                ("console:alice", "/ai test"),
                ("console:dave", "/ai test generate"),
            ],
        ),
    ];
    insta::assert_snapshot!(render_sections(&catalog, &cfg(), &per_profile));
}

#[tokio::test]
async fn ai_test_posts_the_seed_payload_of_the_chosen_endpoint() {
    let t = TestStore::sqlite().await;
    let api = FakeApi::start(&[
        (
            "POST",
            "/api/ai-questions/generate",
            json!({"questions": [{"text": "q"}]}),
        ),
        (
            "POST",
            "/api/ai-questions/instant-feedback",
            json!({"correct": true}),
        ),
    ])
    .await;
    let p = pipeline_for(&cfg(), catalog(&api.url, "/srv/app"), t.store.clone(), clock());
    for (k, path, body) in [
        (
            "generate",
            "/api/ai-questions/generate",
            json!({"category": "logical", "difficulty": "medium", "count": 1}),
        ),
        (
            "feedback",
            "/api/ai-questions/instant-feedback",
            json!({"question_text": "What is 2+2?", "user_answer": "4", "correct_answer": "4"}),
        ),
    ] {
        let r = say_in(&p, "C_SCRAPE", "console:alice", &format!("/ai test {k}")).await;
        assert_eq!(r.outcome, Outcome::Done, "{k}: {}", r.text);
        let got = api.take();
        assert_eq!(got.len(), 1, "{k}: {got:?}");
        assert_eq!((got[0].method.as_str(), got[0].uri.as_str()), ("POST", path));
        assert_eq!(got[0].body.as_ref(), Some(&body), "{k}");
    }
    // A value that is not a choice never reaches the API.
    let r = say_in(&p, "C_SCRAPE", "console:alice", "/ai test delete").await;
    assert_ne!(r.outcome, Outcome::Done, "{}", r.text);
    assert!(api.take().is_empty());
    t.cleanup().await;
}

/// Profile, command, arguments, and the argv npm gets.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);

#[tokio::test]
async fn each_choice_runs_its_own_argv_in_the_app_directory() {
    let s = StandIns::new(&[("npm", "report\n")]);
    let dir = s.path("app");
    let c = catalog("http://127.0.0.1:1", &dir);
    let ex = s.executor(&["npm"]);
    let cases: [Case; 6] = [
        (
            "pdf",
            "security collect",
            &[("w", "logs"), ("period", "7d")],
            &["run", "security:collect-logs", "--", "--period=7d"],
        ),
        (
            "pdf",
            "security collect",
            &[("w", "access"), ("period", "24h")],
            &["run", "security:analyze-access"],
        ),
        (
            "pdf",
            "security collect",
            &[("w", "report"), ("period", "24h")],
            &["run", "security:incident-report"],
        ),
        (
            "pdf",
            "security scan",
            &[("k", "secrets")],
            &["run", "security:secret-scan"],
        ),
        (
            "chat",
            "security scan",
            &[("k", "deps")],
            &["audit", "--audit-level", "high"],
        ),
        ("chat", "security scan", &[("k", "outdated")], &["outdated"]),
    ];
    for (i, (profile, name, a, argv)) in cases.iter().enumerate() {
        let cmd = c.get(profile, name).unwrap();
        let out = ex.execute(&cmd.action, &c.targets, &args(a)).await.unwrap();
        assert_eq!(out.text.trim(), "report", "{profile}:{name} {a:?}");
        let calls = s.calls("npm");
        assert_eq!(calls.len(), i + 1);
        let last = calls.last().unwrap();
        assert_eq!(last.argv, *argv, "{profile}:{name} {a:?}");
        assert_eq!(last.cwd, dir);
    }
}
