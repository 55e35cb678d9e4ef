//! The diagnostic application: `imi-node diag send` messages (kind `diagnostic`, an opaque
//! body). Its effect is a persistent counter of applied diagnostics (total and per sender),
//! which end-to-end tests use to prove that nothing is lost or applied twice; the gauge
//! `imi_diagnostic_applied` follows it once each commit is durable.
use imi_engine::{Application, Inbound, Txn, read_counter};
use imi_protocol::{Header, Kind, NodeId, RejectCode};
use imi_store::{Column, ReadStore, StoreError};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The application's column (named `app` for stored-data compatibility).
pub const APP: Column = "app";
/// Key of the total count of applied diagnostic messages in [`APP`].
pub const DIAG_APPLIED: &[u8] = b"diag/applied";

/// The diagnostic application.
#[derive(Debug, Default, Clone)]
pub struct DiagnosticApp {
    applied: Gauge,
}

impl DiagnosticApp {
    /// The application, its gauge starting from the count stored in `store`.
    pub fn load(store: &dyn ReadStore) -> Result<Self, StoreError> {
        let app = Self::default();
        app.applied
            .set(i64::try_from(applied(store)?).unwrap_or(i64::MAX));
        Ok(app)
    }

    /// Per-sender counter key.
    pub fn sender_key(node: NodeId) -> Vec<u8> {
        let mut k = b"diag/applied/".to_vec();
        k.extend_from_slice(node.as_str().as_bytes());
        k
    }
}

/// The persistent count of applied diagnostic messages.
pub fn applied(store: &dyn ReadStore) -> Result<u64, StoreError> {
    read_counter(store, APP, DIAG_APPLIED)
}

impl Application for DiagnosticApp {
    fn name(&self) -> &'static str {
        "diagnostics"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[Kind::DIAGNOSTIC]
    }

    fn columns(&self) -> &'static [Column] {
        &[APP]
    }

    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        if msg.header.case.is_some() {
            return Err(RejectCode::Application("diagnostic_with_case".into()));
        }
        txn.add(APP, DIAG_APPLIED, 1)?;
        txn.add(APP, &Self::sender_key(msg.header.from), 1)?;
        Ok(())
    }

    fn committed(&self, _header: &Header) {
        self.applied.inc();
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "imi_diagnostic_applied",
            "Applied diagnostic messages (persistent)",
            self.applied.clone(),
        );
    }
}
