//! The timer service under a million pending deadlines: how late a due item
//! fires when 1,000,000 others wait (far in the future) in the same table.
//! The loop sleeps until the earliest deadline (an index lookup) and is woken
//! by the alarm when an earlier one is set, as an escalation step would be.
//! Prints p50 / max lateness over the probes. `cargo bench --bench timers`
//! (env PENDING=1000000, PROBES=50, DB=sqlite|postgres).

mod support;

use opsbot::clock::{Clock, SystemClock};
use opsbot::engine::timers;
use opsbot::store::APPROVAL_EXPIRY;
use std::time::Duration;

#[tokio::main]
async fn main() {
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (pending, probes) = (env("PENDING", 1_000_000), env("PROBES", 50));
    let bench = support::Bench::start("http://127.0.0.1:9").await;
    let (store, pipeline) = (bench.store.clone(), bench.pipeline.clone());
    let took = support::far_deadlines(&store, pending).await;
    println!(
        "timers {}: {pending} pending deadlines stored in {:.1} s",
        bench.db,
        took.as_secs_f64()
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let handle = timers::spawn(pipeline.clone(), stop);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut late = Vec::with_capacity(probes);
    for i in 0..probes {
        let item = format!("probe-{i}");
        let due = SystemClock.now_ms() + 100;
        store.schedule(APPROVAL_EXPIRY, &item, due).await.expect("probe");
        pipeline.alarm.set(due);
        while store
            .timer_due(APPROVAL_EXPIRY, &item)
            .await
            .expect("read")
            .is_some()
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        late.push(SystemClock.now_ms() - due);
    }
    let _ = stop_tx.send(true);
    let _ = handle.await;
    late.sort_unstable();
    println!(
        "timers {}: {probes} probes with {pending} pending: fired p50 {} ms, max {} ms after due (includes up to 1 ms of polling)",
        bench.db,
        late[late.len() / 2],
        late[late.len() - 1],
    );
    bench.finish().await;
}
