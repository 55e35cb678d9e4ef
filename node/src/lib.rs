//! `imi-node`: the one binary a Member State's IT department runs.
//!
//! It composes the crates: loads one TOML config ([`config`]), checks key files
//! ([`keyfile`]), verifies the governance-signed trust list, opens RocksDB, starts the
//! libp2p network and the engine, and serves HTTPS ([`http`]: health, readiness,
//! Prometheus metrics, operator diagnostics). [`init`] creates a whole local federation
//! (keys, trust list, certificates, configs); [`run`] is the node's lifecycle with an
//! ordered shutdown on SIGTERM. This crate is the top of the dependency graph: nothing
//! but simulations and end-to-end tests depend on it.

pub mod backup;
pub mod check;
pub mod config;
pub mod diag;
pub mod http;
pub mod init;
pub mod keyfile;
pub mod notify;
pub mod run;
pub mod tls;
pub mod trustfile;

/// Installs aws-lc-rs as the process's rustls crypto provider (exactly one provider).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
