//! Escalation under load: with 1,000,000 other deadlines pending, how late a
//! due escalation step reaches the outbox (its page row, written in the
//! transaction that fires the step), and how long 10,000 steps due in the
//! same second take to be paged, each once. Uses the shipped `cap` P0
//! policy (secondary paged 5 minutes after declaring): each incident is
//! stored as declared 5 minutes ago, minus a little, with its first step
//! fired. `cargo bench --bench escalation` (env PENDING=1000000, PROBES=50,
//! BURST=10000, DB=sqlite|postgres).

mod support;

use opsbot::clock::{Clock, SystemClock};
use opsbot::engine::timers;
use opsbot::incident::{self, Event};
use opsbot::store::{Store, INCIDENT_STEP};
use std::time::Duration;

const FIVE_MIN: i64 = 5 * 60_000;

/// Stores `n` cap P0 incidents whose second step is due at `due(i)`.
async fn incidents(p: &opsbot::engine::Pipeline, n: usize, due: impl Fn(usize) -> i64) -> Vec<i64> {
    let policy = &p.policies.profiles["cap"];
    let mut ids = Vec::with_capacity(n);
    let mut tx = p.store.begin().await.expect("begin");
    for i in 0..n {
        let at = due(i) - FIVE_MIN;
        let mut inc =
            incident::declare(policy, "cap", "P0", &format!("bench {i}"), "alice", at).expect("declare");
        inc.fired = 1;
        let inc = tx
            .create_incident(&inc, &Event::new(at, "declared", "alice", "bench"))
            .await
            .expect("create");
        tx.schedule(INCIDENT_STEP, &inc.id.to_string(), due(i))
            .await
            .expect("schedule");
        ids.push(inc.id);
    }
    tx.commit().await.expect("commit");
    ids
}

/// When the incident's second step was paged (its page event), if it was.
async fn paged_at(store: &Store, id: i64) -> Option<i64> {
    let events = store.incident_events(id).await.expect("events");
    let pages: Vec<i64> = events
        .iter()
        .filter(|e| e.kind == "page" && e.text.starts_with("step 2"))
        .map(|e| e.at)
        .collect();
    assert!(
        pages.len() <= 2,
        "incident {id}: step 2 paged {} times",
        pages.len()
    );
    pages.first().copied()
}

/// CPU time this process used so far (user + system), in milliseconds.
fn cpu_ms() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|r| r.1).unwrap_or_default();
    let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // Clock ticks are 10 ms on Linux.
    f.get(10).zip(f.get(11)).map_or(0, |(u, s)| (u + s) * 10)
}

fn pct(v: &[i64], p: f64) -> i64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (pending, probes, burst) = (env("PENDING", 1_000_000), env("PROBES", 50), env("BURST", 10_000));
    let bench = support::Bench::start("http://127.0.0.1:9").await;
    let (store, pipeline) = (bench.store.clone(), bench.pipeline.clone());
    let took = support::far_deadlines(&store, pending).await;
    println!(
        "escalation {}: {pending} pending deadlines stored in {:.1} s",
        bench.db,
        took.as_secs_f64()
    );
    // What the loop does at start: fire what is due, find the next deadline.
    let started = std::time::Instant::now();
    let next = timers::fire_due(&pipeline).await.expect("first round");
    println!(
        "escalation {}: first round with {pending} pending, none due: {:.1} ms (next due in {:.0} s)",
        bench.db,
        started.elapsed().as_secs_f64() * 1000.0,
        next.map_or(0, |n| n - SystemClock.now_ms()) as f64 / 1000.0
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let handle = timers::spawn(pipeline.clone(), stop);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (cpu, idle) = (cpu_ms(), std::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!(
        "escalation {}: idle with {pending} pending: {} ms of CPU in {:.0} s",
        bench.db,
        cpu_ms() - cpu,
        idle.elapsed().as_secs_f64()
    );
    let mut late = Vec::with_capacity(probes);
    for _ in 0..probes {
        let due = SystemClock.now_ms() + 100;
        let id = incidents(&pipeline, 1, |_| due).await[0];
        pipeline.alarm.set(due);
        let at = loop {
            if let Some(at) = paged_at(&store, id).await {
                break at;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        late.push(at - due);
    }
    late.sort_unstable();
    println!(
        "escalation {}: {probes} steps with {pending} pending: page row p50 {} ms, p99 {} ms, max {} ms after due",
        bench.db,
        pct(&late, 0.5),
        pct(&late, 0.99),
        late[late.len() - 1],
    );
    // A burst: `burst` steps due within the same second, 2 s from now.
    let start = SystemClock.now_ms() + 2_000;
    let ids = incidents(&pipeline, burst, |i| start + (i % 1000) as i64).await;
    pipeline.alarm.set(start);
    let last_due = start + 999;
    // Steps fire in due order: wait for the last one, then check them all.
    let last = *ids.last().expect("a burst");
    while paged_at(&store, last).await.is_none() {
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(
            SystemClock.now_ms() < last_due + 120_000,
            "burst did not finish in 2 minutes"
        );
    }
    let mut last_page = 0;
    for &id in &ids {
        let at = paged_at(&store, id).await.expect("every step of the burst paged");
        last_page = last_page.max(at);
    }
    println!(
        "escalation {}: {burst} steps due within one second: the last paged {} ms after the last was due ({} ms after the first), each once",
        bench.db,
        last_page - last_due,
        last_page - start
    );
    let _ = stop_tx.send(true);
    let _ = handle.await;
    bench.finish().await;
}
