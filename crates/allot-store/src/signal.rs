//! A generation counter that readers of a [`crate::Log`] wait on.
//!
//! Why not `sled::Subscriber`: its channel holds 1024 events and a writer
//! blocks when a subscriber's channel is full, so one idle subscriber would
//! stall every append. A counter never blocks the writer: an append bumps it
//! and wakes whoever is waiting, sync (condvar) or async (wakers), and a
//! reader that was slow simply sees a larger number.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    /// Bumped after every durable append (starts at 0 when the store opens).
    generation: u64,
    /// Async waiters by id, so a dropped future removes its own waker.
    wakers: HashMap<u64, Waker>,
    /// Ids for `wakers`.
    next_waiter: u64,
}

/// One log's wake-up signal, shared by every [`crate::Log`] handle of that log.
#[derive(Default)]
pub(crate) struct Signal {
    state: Mutex<State>,
    cond: Condvar,
}

impl Signal {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: it is a counter
        // and a waker map.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Called after data became durable and visible.
    pub(crate) fn bump(&self) {
        let wakers: Vec<Waker> = {
            let mut s = self.lock();
            s.generation += 1;
            s.wakers.drain().map(|(_, w)| w).collect()
        };
        self.cond.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    /// Blocks until the generation exceeds `seen` or `timeout` passes; returns
    /// the generation then.
    pub(crate) fn wait_blocking(&self, seen: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        while s.generation <= seen {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = match self.cond.wait_timeout(s, deadline - now) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        s.generation
    }
}

/// Future returned by [`crate::Log::changed`]: resolves to the new generation
/// once the log's generation exceeds the one the caller saw. Runtime-agnostic
/// (no tokio): it registers a waker and is woken by the appending thread.
pub struct LogChanged {
    pub(crate) signal: Arc<Signal>,
    /// The generation the caller already handled.
    pub(crate) seen: u64,
    /// Our slot in the waker map while pending.
    pub(crate) waiter: Option<u64>,
}

impl Future for LogChanged {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let this = &mut *self;
        let mut s = this.signal.lock();
        if s.generation > this.seen {
            if let Some(id) = this.waiter.take() {
                s.wakers.remove(&id);
            }
            return Poll::Ready(s.generation);
        }
        let id = match this.waiter {
            Some(id) => id,
            None => {
                let id = s.next_waiter;
                s.next_waiter += 1;
                this.waiter = Some(id);
                id
            }
        };
        s.wakers.insert(id, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for LogChanged {
    fn drop(&mut self) {
        if let Some(id) = self.waiter.take() {
            self.signal.lock().wakers.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Wake;

    struct Flag(Mutex<bool>);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            *self.0.lock().unwrap() = true;
        }
    }

    #[test]
    fn future_wakes_on_bump_and_cleans_up() {
        let signal = Arc::new(Signal::default());
        let flag = Arc::new(Flag(Mutex::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut fut = LogChanged {
            signal: signal.clone(),
            seen: 0,
            waiter: None,
        };
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Pending);
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Pending);
        assert_eq!(signal.lock().wakers.len(), 1, "re-polling reuses the slot");
        signal.bump();
        assert!(*flag.0.lock().unwrap());
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(1));

        let mut dropped = LogChanged {
            signal: signal.clone(),
            seen: 1,
            waiter: None,
        };
        assert_eq!(Pin::new(&mut dropped).poll(&mut cx), Poll::Pending);
        drop(dropped);
        assert!(signal.lock().wakers.is_empty(), "drop removes the waker");
    }

    #[test]
    fn blocking_wait_returns_on_bump_or_timeout() {
        let signal = Arc::new(Signal::default());
        assert_eq!(signal.wait_blocking(0, Duration::from_millis(10)), 0);
        let s2 = signal.clone();
        let t = std::thread::spawn(move || s2.wait_blocking(0, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        signal.bump();
        assert_eq!(t.join().unwrap(), 1);
    }
}
