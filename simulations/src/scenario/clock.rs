//! The simulator's view of the nodes' shared simulated clock (`[simulation]` in their
//! configs): the same [`ScaledClock`], read from the same system clock.
use imi_node::config::ScaledClock;
use imi_protocol::{Clock, SystemClock};
use std::time::Duration;

/// Simulated time as every node of the run reads it.
#[derive(Debug, Clone, Copy)]
pub struct SimTime {
    /// The clock the nodes were given.
    pub clock: ScaledClock,
}

impl SimTime {
    /// Simulated unix ms now.
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The wall-clock unix ms at which the simulated clock reads `sim`.
    pub fn wall_of(&self, sim: u64) -> u64 {
        self.clock.wall_of(sim)
    }

    /// Wall time until the simulated clock reads `sim` (zero if it has).
    pub fn until(&self, sim: u64) -> Duration {
        Duration::from_millis(self.wall_of(sim).saturating_sub(SystemClock.now_ms()))
    }

    /// Sleeps until the simulated clock reads `sim`.
    pub async fn sleep_until(&self, sim: u64) {
        loop {
            let d = self.until(sim);
            if d.is_zero() && self.now() >= sim {
                return;
            }
            tokio::time::sleep(d.max(Duration::from_millis(1))).await;
        }
    }

    /// Simulated days as wall time.
    pub fn wall_of_days(&self, days: f64) -> Duration {
        Duration::from_secs_f64((days * 86_400_000.0 / self.clock.speed / 1000.0).max(0.0))
    }
}
