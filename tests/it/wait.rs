//! Waiting for a fake's recorded calls, shared by the fakes of the test
//! binary and of the benchmarks.

/// Waits until `done` holds for a fake's recorded calls (`calls()`), woken by
/// `changed`; after `timeout` panics with `what` and every call, as `show` prints it.
pub async fn wait_for_calls<T>(
    changed: &tokio::sync::Notify,
    timeout: std::time::Duration,
    calls: impl Fn() -> Vec<T>,
    done: impl Fn(&[T]) -> bool,
    what: &str,
    show: impl Fn(&T) -> String,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let seen = calls();
        if done(&seen) {
            return seen;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            let seen: Vec<String> = seen.iter().map(&show).collect();
            panic!("timed out waiting for {what}; got {seen:#?}");
        }
    }
}
