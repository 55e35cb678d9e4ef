//! `futures_timer::Delay` on tokio's timer.
//!
//! The crates.io `futures-timer` keeps its timers on a helper thread of its own. Every
//! `Delay` made, reset or dropped wakes that thread (a futex wake, a context switch, on a
//! virtual machine usually an inter-processor interrupt) so that it can recompute its next
//! deadline. libp2p makes and drops several per request (the substream's upgrade timeout,
//! request-response's per-stream timeout, the connection's idle timer), so at a low message
//! rate the helper thread woke about three times per message on each node
//! (BENCHMARKS.md, *Timers on the runtime*).
//!
//! This crate has the same public API, [`Delay`], and keeps its deadline in the timer wheel of
//! the tokio runtime it is made on: registering, resetting and dropping a timer is a few
//! memory writes on the calling worker, and the wheel is turned by the workers when they park
//! anyway. A `Delay` made outside any runtime uses a runtime of its own on one thread
//! (`timer-fallback`), started at the first such use, like the original's helper thread.
//!
//! Semantics kept from the original: a `Delay` fires once its duration has passed, later
//! polls return `Ready` again, [`Delay::reset`] arms it anew (also after it fired), and
//! dropping it cancels it. One difference: a `Delay` made on a runtime whose clock a test
//! paused (`tokio::time::pause`) follows that clock.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};

/// A future that completes once its duration has passed (`futures_timer::Delay`).
pub struct Delay {
    sleep: Pin<Box<Sleep>>,
}

impl Delay {
    /// A timer that fires `dur` from now.
    pub fn new(dur: Duration) -> Delay {
        let at = deadline(dur);
        let sleep = match Handle::try_current() {
            Ok(_) => tokio::time::sleep_until(at),
            Err(_) => match fallback() {
                Some(handle) => {
                    let _entered = handle.enter();
                    tokio::time::sleep_until(at)
                }
                // Without a runtime of its own (the thread could not be started), the timer
                // is made on none: tokio refuses that, so this is the original's behaviour
                // when its helper thread could not start, surfaced the same way.
                None => tokio::time::sleep_until(at),
            },
        };
        Delay {
            sleep: Box::pin(sleep),
        }
    }

    /// Arms the timer anew to fire `dur` from now, whether or not it fired already.
    pub fn reset(&mut self, dur: Duration) {
        self.sleep.as_mut().reset(deadline(dur));
    }
}

/// `now + dur`, or about thirty years from now when that would overflow (a "never" timer).
fn deadline(dur: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(dur)
        .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(now)
}

/// The runtime of `Delay`s made outside any runtime: one thread, started at the first use.
fn fallback() -> Option<&'static Handle> {
    static HANDLE: OnceLock<Option<Handle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .ok()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("timer-fallback".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.sleep.as_mut().poll(cx)
    }
}

impl fmt::Debug for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delay")
            .field("deadline", &self.sleep.deadline())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timer of a runtime with a paused clock: fires at its deadline, not before.
    #[tokio::test(start_paused = true)]
    async fn fires_after_its_duration_and_stays_ready() {
        let start = Instant::now();
        let mut d = Delay::new(Duration::from_secs(5));
        (&mut d).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
        // Polled again after firing, it is still ready.
        (&mut d).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_arms_it_again_from_now() {
        let start = Instant::now();
        let mut d = Delay::new(Duration::from_secs(1));
        (&mut d).await;
        d.reset(Duration::from_secs(3));
        (&mut d).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(4));
        // Reset before it fires: the new deadline replaces the old one.
        let mut d = Delay::new(Duration::from_secs(10));
        d.reset(Duration::from_secs(2));
        (&mut d).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_never_timer_does_not_overflow() {
        let mut d = Delay::new(Duration::MAX);
        d.reset(Duration::MAX);
        let later = tokio::time::timeout(Duration::from_secs(3600), &mut d).await;
        assert!(later.is_err(), "a Duration::MAX timer fired within an hour");
    }

    /// Made outside any runtime, it runs on the crate's own thread and is awaited anywhere.
    #[test]
    fn made_outside_a_runtime_it_fires_on_its_own_thread() {
        let d = Delay::new(Duration::from_millis(20));
        let started = std::time::Instant::now();
        futures_lite_block_on(d);
        assert!(started.elapsed() >= Duration::from_millis(19));
    }

    /// No tokio context at all: a minimal executor that parks the thread until woken.
    fn futures_lite_block_on<F: Future>(f: F) -> F::Output {
        use std::sync::Arc;
        use std::task::Wake;
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Arc::new(Unpark(std::thread::current())).into();
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}
