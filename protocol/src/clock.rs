//! Time. All code reads time through a [`Clock`]: the system clock in production, a
//! [`ManualClock`] in tests and simulations.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds since the Unix epoch (UTC).
pub type Timestamp = u64;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Timestamp {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to. Cloning shares the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock set to `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(AtomicU64::new(start)))
    }
    /// Sets the time.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t, Ordering::SeqCst);
    }
    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

/// How much earlier than the previous step of its case a step may be signed: the clock skew
/// tolerated between two nodes, ms (1 minute). An earlier step is refused
/// (`time_before_previous`).
pub const MAX_STEP_CLOCK_SKEW_MS: Timestamp = 60_000;

/// How much older than its receipt a step's signed time may be and still be used as the
/// step's time by the receiver, ms (10 minutes). Beyond that the receiver uses its own
/// receipt time.
pub const MAX_PAST_SKEW_MS: Timestamp = 10 * 60 * 1000;

/// Why a step's time is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeRefusal {
    /// Signed more than the allowed skew after the receiver's clock (`from_future`).
    FromFuture,
    /// Signed more than [`MAX_STEP_CLOCK_SKEW_MS`] before the previous step
    /// (`time_before_previous`).
    BeforePrevious,
}

impl TimeRefusal {
    /// The code in the receipt.
    pub fn code(self) -> &'static str {
        match self {
            TimeRefusal::FromFuture => "from_future",
            TimeRefusal::BeforePrevious => "time_before_previous",
        }
    }
}

/// The previous step of a case, as the receiver holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviousStep {
    /// Its signed time.
    pub signed: Timestamp,
    /// The time the receiver defends for it.
    pub defended: Timestamp,
}

/// The time rule for a step of a case (documented with vectors in
/// `protocol/vectors/README.md`, "Time of a step"). A step signed at `signed` and received
/// at `received` is refused when it is signed more than `max_future_skew_ms` after
/// `received`, or more than [`MAX_STEP_CLOCK_SKEW_MS`] before the previous step's signed
/// time. Otherwise its **defended time**, the one retention and every indicator use, is the
/// signed time if it is at most [`MAX_PAST_SKEW_MS`] older than the receipt, else the
/// receipt time; and never earlier than the previous step's defended time. A node's own step
/// has `received == signed`.
pub fn step_time(
    previous: Option<PreviousStep>,
    signed: Timestamp,
    received: Timestamp,
    max_future_skew_ms: Timestamp,
) -> Result<Timestamp, TimeRefusal> {
    if signed > received.saturating_add(max_future_skew_ms) {
        return Err(TimeRefusal::FromFuture);
    }
    if previous.is_some_and(|p| signed.saturating_add(MAX_STEP_CLOCK_SKEW_MS) < p.signed) {
        return Err(TimeRefusal::BeforePrevious);
    }
    let own = if received.saturating_sub(signed) > MAX_PAST_SKEW_MS {
        received
    } else {
        signed
    };
    Ok(previous.map_or(own, |p| own.max(p.defended)))
}
