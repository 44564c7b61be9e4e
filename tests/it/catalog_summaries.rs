//! Rows whose answer the bot computes over an action's output (`summarize`,
//! definitions as data in the catalog): AI-7 (chat), OPS-20, OPS-21, S-9,
//! SEC-1, SEC-2 (scrape). The shipped definitions are applied to canned
//! outputs in table tests (counts, filters, averages, advice and picks at and
//! around each threshold), every command is rendered (one snapshot), and the
//! commands run end to end: http ones through the pipeline against a fake
//! of the scraping backend, process ones against stand-ins.

use crate::support::{
    args, clock, config, pipeline_for, render_cases, say_in, shipped_catalog_env, FakeApi, StandIns,
    TestStore,
};
use opsbot::catalog::{Action, Catalog, Summarize};
use opsbot::config::Config;
use opsbot::engine::Outcome;
use opsbot::exec::{summarize, ExecOutput};
use serde_json::{json, Value};

/// Every profile enabled, and a scrape channel.
fn cfg() -> Config {
    let mut c = config("[channels.C_SCRAPE]\nprofile = \"scrape\"\n");
    c.profiles.extend(["cap", "scrape", "pdf"].map(String::from));
    c
}

fn catalog(api: &str) -> Catalog {
    shipped_catalog_env(&cfg(), &[("OPSBOT_TARGET_SCRAPE_API", api)])
}

/// The `summarize` of a shipped command: the action itself, or step `step` of its seq.
fn summary_of<'a>(c: &'a Catalog, profile: &str, name: &str, step: usize) -> &'a Summarize {
    let cmd = c.get(profile, name).unwrap_or_else(|| panic!("{profile}:{name}"));
    let action = match &cmd.action {
        Action::Seq(seq) => &seq.steps[step].action,
        other => other,
    };
    match action {
        Action::Summarize(s) => s,
        other => panic!("{profile}:{name} is a {} action", other.kind()),
    }
}

fn output(text: &str, fields: Value) -> ExecOutput {
    ExecOutput {
        summary: "ran".into(),
        text: text.into(),
        fields,
        effects: Vec::new(),
    }
}

/// A process output with `stdout`.
fn stdout(s: &str) -> ExecOutput {
    output(s, json!({ "exit_code": 0, "stdout": s, "stderr": "" }))
}

#[test]
fn s9_picks_the_job_limit_by_the_higher_of_cpu_and_memory() {
    let c = catalog("http://127.0.0.1:1");
    let s = summary_of(&c, "scrape", "scrape advise", 0);
    for (cpu, mem, want) in [
        (json!(85.0), json!(10.0), json!("2")),
        (json!(10.0), json!(80.5), json!("2")),
        (json!(80.0), json!(80.0), json!("3")),
        (json!(60.1), json!(0), json!("3")),
        (json!(60.0), json!(60.0), json!("5")),
        (json!(0), json!(0), json!("5")),
        (json!("72.5"), json!(1), json!("3")),
    ] {
        let out = summarize(
            s,
            output("{}", json!({"cpu_percent": cpu, "memory_percent": mem})),
        )
        .unwrap();
        assert_eq!(out.fields["pick"], want, "cpu {cpu} mem {mem}");
        assert_eq!(out.fields["cpu_percent"], cpu, "the reading stays in the fields");
    }
    // A missing reading holds no threshold: the fallback answers.
    let out = summarize(s, output("{}", json!({"cpu_percent": 95}))).unwrap();
    assert_eq!(out.fields["pick"], "5");
}

/// (cpu, memory) per point, and the advice each says.
type Advised = (&'static [(f64, f64)], &'static [&'static str]);

#[test]
fn ops20_averages_peaks_and_advises_with_the_seed_thresholds() {
    let c = catalog("http://127.0.0.1:1");
    let history = summary_of(&c, "scrape", "ops capacity", 0);
    let series = |points: &[(f64, f64)]| {
        let metrics: Vec<Value> = points
            .iter()
            .map(|(c, m)| json!({"timestamp": "t", "cpu_percent": c, "memory_percent": m}))
            .collect();
        output("", json!({ "metrics": metrics }))
    };
    let cases: [Advised; 5] = [
        (&[(70.0, 50.0), (60.0, 50.0)], &["CPU average above 60 %"]),
        (&[(20.0, 50.0), (30.0, 50.0)], &["CPU average below 30 %"]),
        (
            &[(50.0, 80.0), (50.0, 95.0)],
            &["memory average above 75 %", "memory peaks above 90 %"],
        ),
        (&[(50.0, 50.0), (50.0, 91.0)], &["memory peaks above 90 %"]),
        (&[(60.0, 75.0), (30.0, 75.0)], &["within the seed's bands"]),
    ];
    for (points, want) in cases {
        let out = summarize(history, series(points)).unwrap();
        let said: Vec<String> = out.fields["advice"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(said.len(), want.len(), "{points:?}: {said:?}");
        for (s, w) in said.iter().zip(want) {
            assert!(s.contains(w), "{points:?}: {said:?}");
        }
    }
    let out = summarize(history, series(&[(10.0, 20.0), (20.0, 40.0), (30.0, 60.0)])).unwrap();
    assert_eq!(
        out.fields["cpu_percent"],
        json!({"avg": 20.0, "peak": 30.0, "points": 3})
    );
    assert_eq!(
        out.fields["memory_percent"],
        json!({"avg": 40.0, "peak": 60.0, "points": 3})
    );
    assert!(
        out.text
            .starts_with("cpu_percent: average 20.0, peak 30.0 over 3 points\n"),
        "{}",
        out.text
    );
    // No history: no averages, only the fallback.
    let out = summarize(history, series(&[])).unwrap();
    assert_eq!(out.fields["cpu_percent"], json!({"points": 0}));
    assert!(
        out.text.contains("cpu_percent: no values in 0 points"),
        "{}",
        out.text
    );
    // Not the seed's shape: a friendly refusal.
    let err = summarize(history, output("", json!({"rows": []}))).unwrap_err();
    assert_eq!(err.to_string(), "the answer has no array at `metrics`");

    let now = summary_of(&c, "scrape", "ops capacity", 1);
    for (cpu, mem, want) in [
        (
            81.0,
            10.0,
            vec!["cpu or memory above 80 % now: add resources (vertical scaling)"],
        ),
        (
            39.0,
            39.9,
            vec!["cpu and memory below 40 % now: over-provisioned"],
        ),
        (39.0, 40.0, vec![]),
        (80.0, 50.0, vec![]),
    ] {
        let out = summarize(
            now,
            output("{}", json!({"cpu_percent": cpu, "memory_percent": mem})),
        )
        .unwrap();
        assert_eq!(out.fields["advice"], json!(want), "cpu {cpu} mem {mem}");
    }
}

#[test]
fn line_summaries_count_filter_and_keep_the_last() {
    let c = catalog("http://127.0.0.1:1");
    // AI-7: a count only.
    let ai7 = summary_of(&c, "chat", "ai fallback", 0);
    let log = "info ok\nwarn Using mock response for q1\n\nUsing mock response\ninfo using MOCK response\n";
    let out = summarize(ai7, stdout(log)).unwrap();
    assert_eq!(
        (out.fields["count"].clone(), out.fields["read"].clone()),
        (json!(2), json!(4))
    );
    assert_eq!(out.fields["lines"], json!([]));
    assert_eq!(out.text, "2 of 4 lines match /Using mock response/");
    // Only stdout is read, not what stderr added to the text.
    let mut noisy = stdout("Using mock response\n");
    noisy.text.push_str("\n[stderr]\nUsing mock response\n");
    assert_eq!(summarize(ai7, noisy).unwrap().fields["count"], 1);

    // SEC-1: the last 20 of 25 matches, in order.
    let sec1 = summary_of(&c, "scrape", "security auth-failures", 0);
    let lines: Vec<String> = (1..=30)
        .map(|i| match i % 6 {
            0 => format!("{i} login ok authentication=true"),
            _ => format!("{i} user=x authentication: false"),
        })
        .collect();
    let out = summarize(sec1, stdout(&lines.join("\n"))).unwrap();
    assert_eq!(out.fields["count"], 25);
    let kept: Vec<&str> = out.fields["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(kept.len(), 20);
    assert_eq!(kept[0], "7 user=x authentication: false");
    assert_eq!(kept[19], "29 user=x authentication: false");
    assert!(out
        .text
        .starts_with("25 of 30 lines match /authentication.*false/\nthe last 20:\n7 user"));

    // OPS-21: every line of ss is one connection; blank lines are not.
    let conns = summary_of(&c, "scrape", "ops conns", 0);
    let ss = "0 0 10.0.0.1:8001 10.0.0.9:50000\n0 0 10.0.0.1:8001 10.0.0.8:50001\n\n";
    assert_eq!(summarize(conns, stdout(ss)).unwrap().fields["count"], 2);
    assert_eq!(summarize(conns, stdout("")).unwrap().fields["count"], 0);

    // SEC-2: the dashboard's rate-limiting errors, then the log filters.
    let dash = summary_of(&c, "scrape", "security suspicious", 0);
    let body = json!({"top_errors": [
        {"type": "429 from groq", "category": "rate_limiting", "count": 7},
        {"type": "timeout", "category": "network", "count": 3},
        {"type": "too many requests", "category": "rate_limiting", "count": 2},
    ]});
    let out = summarize(dash, output("", body)).unwrap();
    assert_eq!(
        (out.fields["count"].clone(), out.fields["of"].clone()),
        (json!(2), json!(3))
    );
    assert_eq!(out.fields["items"][1]["type"], "too many requests");
    assert!(
        out.text
            .starts_with("2 of 3 top_errors with category = rate_limiting\n"),
        "{}",
        out.text
    );
    let access = summary_of(&c, "scrape", "security suspicious", 2);
    let nginx =
        "GET /a 200\nGET /admin 403 Forbidden\nPOST /login 401 UNAUTHORIZED\nGET /x 200 access denied\n";
    assert_eq!(summarize(access, stdout(nginx)).unwrap().fields["count"], 3);
}

#[test]
fn every_summarized_command_parses_authorizes_and_renders() {
    let catalog = catalog("http://127.0.0.1:1");
    let chat = render_cases(
        &catalog,
        &cfg(),
        "chat",
        &[
            ("console:alice", "/ai fallback"),
            ("console:dave", "/ai fallback"),
        ],
    );
    let scrape = render_cases(
        &catalog,
        &cfg(),
        "scrape",
        &[
            ("console:dave", "/ops capacity"),
            ("console:dave", "/ops capacity --hours 6"),
            ("console:dave", "/ops capacity --hours \"6&hours=999\""),
            ("console:alice", "/ops conns"),
            ("console:dave", "/ops conns"),
            ("console:dave", "/scrape advise"),
            ("console:alice", "/security auth-failures"),
            ("console:alice", "/security suspicious"),
        ],
    );
    insta::assert_snapshot!(format!("## chat\n\n{chat}\n\n## scrape\n\n{scrape}"));
}

#[tokio::test]
async fn http_summaries_run_through_the_pipeline() {
    let t = TestStore::sqlite().await;
    let api = FakeApi::start(&[
        (
            "GET",
            "/api/production/metrics",
            json!({"cpu_percent": 72.5, "memory_percent": 41.0, "disk_percent": 40.1}),
        ),
        (
            "GET",
            "/api/production/metrics/history",
            json!({"metrics": [
                {"timestamp": "t1", "cpu_percent": 55.0, "memory_percent": 70.0},
                {"timestamp": "t2", "cpu_percent": 75.0, "memory_percent": 93.0},
            ]}),
        ),
    ])
    .await;
    let p = pipeline_for(&cfg(), catalog(&api.url), t.store.clone(), clock());
    let r = say_in(&p, "C_SCRAPE", "console:dave", "/scrape advise").await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    assert_eq!(
        r.text,
        "max concurrent jobs: 3 (cpu 72.5 %, memory 41.0 %; above 80 → 2, above 60 → 3, else 5)"
    );
    api.take();
    let r = say_in(&p, "C_SCRAPE", "console:dave", "/ops capacity --hours 6").await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    for line in [
        "cpu_percent: average 65.0, peak 75.0 over 2 points",
        "memory_percent: average 81.5, peak 93.0 over 2 points",
        "→ CPU average above 60 %: consider scaling up CPU resources",
        "→ memory average above 75 %: consider increasing memory allocation",
        "→ memory peaks above 90 %: critical, scale now",
        "advice: none",
    ] {
        assert!(r.text.lines().any(|l| l == line), "{line}:\n{}", r.text);
    }
    let uris: Vec<String> = api.take().into_iter().map(|r| r.uri).collect();
    assert_eq!(
        uris,
        [
            "/api/production/metrics/history?hours=6",
            "/api/production/metrics"
        ]
    );
    t.cleanup().await;
}

#[tokio::test]
async fn process_summaries_read_the_whole_output_before_it_is_cut() {
    // More output than a chat message holds: the count covers all of it.
    let mut tail = String::new();
    for i in 0..5000 {
        tail.push_str(if i % 10 == 0 {
            "Using mock response: deepseek unavailable\n"
        } else {
            "info request served in 12 ms\n"
        });
    }
    let s = StandIns::new(&[("tail", &tail), ("ss", "0 0 10.0.0.1:8001 10.0.0.2:1\n")]);
    let c = catalog("http://127.0.0.1:1");
    let ex = s.executor(&["tail", "ss"]);
    let cmd = c.get("chat", "ai fallback").unwrap();
    let out = ex.execute(&cmd.action, &c.targets, &args(&[])).await.unwrap();
    assert_eq!(out.fields["count"], 500);
    assert_eq!(out.fields["read"], 5000);
    let tail_argv = s.only_call("tail");
    assert_eq!(tail_argv, ["-n", "5000", "/var/log/app.log"]);

    let cmd = c.get("scrape", "ops conns").unwrap();
    let out = ex.execute(&cmd.action, &c.targets, &args(&[])).await.unwrap();
    assert_eq!(
        (out.fields["1"]["count"].clone(), out.fields["2"]["count"].clone()),
        (json!(1), json!(1))
    );
    let ports: Vec<String> = s.calls("ss").into_iter().map(|c| c.argv.join(" ")).collect();
    assert_eq!(
        ports,
        [
            "-Htan state established sport = :8001",
            "-Htan state established sport = :3000"
        ]
    );
    // A program off the allow-list is refused before anything runs.
    let err = s
        .executor(&["tail"])
        .execute(&cmd.action, &c.targets, &args(&[]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`ss` is not on the allow-list"), "{err}");
}
