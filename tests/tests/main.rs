//! End-to-end tests with real `imi-node` processes, one binary (the modules live in a
//! subdirectory so that cargo does not take each for a test binary):
//!
//! * [`alerts`]: an alert sealed for coordinators, forwarded and granted; late alerts; bad input.
//! * [`e2e`]: the substrate: exactly-once delivery, crashes, hostile peers, shutdown.
//! * [`repositories`]: a register held by its access list only; public syndication (JSON, Atom).
//! * [`requests`]: IMI requests through the authorities' API.
//! * [`package`]: the `.deb` in a throwaway root (files, scripts, unit, config check); the
//!   node under systemd's notification protocol (ready, watchdog, stopping).
//! * [`notifications`]: one notification to 29 countries and the Commission, one node down;
//!   nobody else can read it; bad input.
//! * [`api_authz`]: the authorization matrix and bad input.
//! * [`scoreboard`]: the Commission node and the scoreboard.
//! * [`audit`]: trails, witnessing, bundles and retention.
//! * [`backup`]: a backup under load, verified, tampered with; a lost machine restored from
//!   an older backup: nothing lost, nothing applied twice, erased cases stay erased.
//! * [`config_check`]: `imi-node config check` names every problem without starting.
//! * [`directory`]: the replicated directory with five real nodes: convergence, catch-up
//!   after downtime and after a wiped data directory, retirement, import and export.
//! * [`governance`]: trust-list versions signed, shown, pushed, never rolled back; key rotation.
//! * [`torture`]: the short `imi-sim torture`: 20 SIGKILLs under traffic, every invariant.
//! * [`simulation`]: `imi-sim run` on a simulated clock: the fault scenarios and the 2021
//!   scoreboard reproduced by 31 nodes.
//! * [`upgrade`]: a node directory written by release 0.1.0 (a backup, keys, trust list)
//!   verifies, restores and serves with today's binary.
//! * [`web`]: the authorities' web application in headless Chromium: the DE→HU story
//!   clicked through in German and Hungarian, axe-core, keyboard, 320 px; sessions, CSRF,
//!   revocation and error pages over HTTPS.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "e2e/alerts.rs"]
mod alerts;
#[path = "e2e/api_authz.rs"]
mod api_authz;
#[path = "e2e/audit.rs"]
mod audit;
#[path = "e2e/backup.rs"]
mod backup;
#[path = "e2e/config_check.rs"]
mod config_check;
#[path = "e2e/directory.rs"]
mod directory;
#[path = "e2e/e2e.rs"]
mod e2e;
#[path = "e2e/governance.rs"]
mod governance;
#[path = "e2e/notifications.rs"]
mod notifications;
#[path = "e2e/package.rs"]
mod package;
#[path = "e2e/repositories.rs"]
mod repositories;
#[path = "e2e/requests.rs"]
mod requests;
#[path = "e2e/scoreboard.rs"]
mod scoreboard;
#[path = "e2e/simulation.rs"]
mod simulation;
#[path = "e2e/torture.rs"]
mod torture;
#[path = "e2e/upgrade.rs"]
mod upgrade;
#[path = "e2e/web.rs"]
mod web;
