//! Wake-ups between tasks that no listener can steal from another: each
//! listener holds its own `watch` receiver, so a raise is seen by all of
//! them, including one that was busy at the time.

use crate::clock::Millis;
use std::sync::Arc;
use tokio::sync::watch;

/// "Look at the store again" (new outbox rows, new inbox rows).
#[derive(Debug, Clone)]
pub struct Signal(Arc<watch::Sender<u64>>);

impl Default for Signal {
    fn default() -> Self {
        Signal(Arc::new(watch::channel(0).0))
    }
}

impl Signal {
    pub fn raise(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn listen(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// The timer loop's alarm: it wakes only when a deadline earlier than the
/// one it sleeps towards is set.
#[derive(Debug, Clone)]
pub struct Alarm(Arc<watch::Sender<Option<Millis>>>);

impl Default for Alarm {
    fn default() -> Self {
        Alarm(Arc::new(watch::channel(None).0))
    }
}

impl Alarm {
    /// A new deadline at `due`: wakes the loop if it sleeps past it.
    pub fn set(&self, due: Millis) {
        self.0.send_if_modified(|target| match *target {
            Some(t) if t <= due => false,
            _ => {
                *target = Some(due);
                true
            }
        });
    }

    /// The loop sleeps towards `target` (None: nothing pending); sets it
    /// without waking anyone.
    pub fn sleeping_until(&self, target: Option<Millis>) {
        self.0.send_if_modified(|t| {
            *t = target;
            false
        });
    }

    pub fn listen(&self) -> watch::Receiver<Option<Millis>> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_earlier_deadline_wakes_the_loop() {
        let alarm = Alarm::default();
        let mut rx = alarm.listen();
        alarm.sleeping_until(Some(1_000));
        assert!(!rx.has_changed().unwrap());
        alarm.set(2_000);
        assert!(!rx.has_changed().unwrap(), "later deadline: keep sleeping");
        alarm.set(500);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), Some(500));
        alarm.sleeping_until(None);
        alarm.set(9_000);
        assert!(rx.has_changed().unwrap(), "idle loop wakes for any deadline");
    }

    #[test]
    fn every_listener_sees_a_raise() {
        let s = Signal::default();
        let (mut a, mut b) = (s.listen(), s.listen());
        s.raise();
        assert!(a.has_changed().unwrap() && b.has_changed().unwrap());
        a.mark_unchanged();
        assert!(b.has_changed().unwrap(), "a cannot steal b's wake-up");
        b.mark_unchanged();
    }
}
