//! The engine owns its periodic jobs: it spawns them on its task tracker, runs them on
//! their schedule (or only on demand when the configuration turns the schedule off) and
//! joins them at shutdown, so that none outlives the engine.
use crate::rig::{Federation, wait_until};
use imi_engine::{Application, Applications, Engine, PeriodicJob};
use imi_protocol::NodeId::{AT, BE};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// An application whose only feature is a job that counts its runs. Each run holds a
/// clone of `alive`, so a live `Weak` to it after shutdown would mean a job outlived the
/// engine.
struct Ticker {
    runs: Arc<AtomicU64>,
    alive: Arc<()>,
}

impl Application for Ticker {
    fn name(&self) -> &'static str {
        "ticker"
    }
    fn jobs(&self) -> Vec<PeriodicJob> {
        let runs = self.runs.clone();
        let alive = self.alive.clone();
        vec![PeriodicJob::new(
            "tick",
            Duration::from_millis(5),
            true,
            move |_engine: Engine| {
                let runs = runs.clone();
                let alive = alive.clone();
                async move {
                    let _held = alive;
                    runs.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), std::io::Error>(())
                }
            },
        )]
    }
}

fn ticker() -> (Applications, Arc<AtomicU64>, Weak<()>) {
    let runs = Arc::new(AtomicU64::new(0));
    let alive = Arc::new(());
    let weak = Arc::downgrade(&alive);
    let app = Ticker {
        runs: runs.clone(),
        alive,
    };
    (Applications::new(vec![Arc::new(app)]), runs, weak)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_jobs_run_on_schedule_and_none_outlives_the_engine() {
    let fed = Federation::new(&[AT, BE]);
    let (apps, runs, weak) = ticker();
    let a = fed.start_with(AT, apps).await;
    assert!(a.engine().job_names().contains(&"tick"));
    wait_until("the job to run three times", || {
        runs.load(Ordering::SeqCst) >= 3
    })
    .await;
    a.stop().await;
    assert!(
        weak.upgrade().is_none(),
        "a periodic job (or its closure) is still alive after the engine was joined"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_schedule_is_off_runs_only_on_demand() {
    let fed = Federation::new(&[AT, BE]);
    let (apps, runs, weak) = ticker();
    let mut config = Federation::engine_config();
    config.job_interval_ms.insert("tick".into(), 0);
    let a = fed.start_configured(AT, apps, config).await;
    // Another engine operation completing proves the engine's tasks are running; the
    // job has not.
    a.engine().checkpoint().await.expect("checkpoint");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    a.engine().run_job("tick").await.expect("run the job");
    a.engine().run_job("tick").await.expect("run the job");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(a.engine().run_job("no-such-job").await.is_err());
    a.stop().await;
    assert!(weak.upgrade().is_none());
}
