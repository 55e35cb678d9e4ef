//! `imi-apps`: the applications of a national node, beside the messaging kernel
//! (`imi-engine`). Each plugs into the kernel through [`imi_engine::Application`]: the
//! message kinds it handles and sends, whether its traffic is logged, the columns it owns,
//! its periodic jobs.
//!
//! | module | kinds | columns | jobs |
//! |---|---|---|---|
//! | [`diagnostics`] | `diagnostic` | `app` | — |
//! | [`requests`] | `imi.request` | `case_keys`, `cases`, `case_index`, `case_files` | — |
//! | [`facts`] | `imi.fact`, `imi.facts`, `imi.usage`, `imi.usages` (member: sends; `EU`: handles) | `facts`, `facts_pending`, `usage`, `usage_pending` | `fact-report` |
//! | [`witness`] | `imi.checkpoint`, `imi.cosignature` (not logged) | `witness`, `witness_out`, `alarms` | `checkpoint` |
//! | [`directory`] | `imi.directory.update`, `imi.directory.sync` (not logged) | `directory`, `directory_meta`, `directory_out` | `directory-publish`, `directory-sync` |
//! | [`notifications`] | `imi.notification` (steps `notify`, `read`) | `notifications` | — |
//! | [`repositories`] | `imi.repository.entry` | `repository` | — |
//! | [`alerts`] | `imi.alert` (steps `alert`, `forward`, `grant`, `modify`, `close`) | `alerts` | `alert-grants` |
//! | [`retention`] | — | `blocked`, `tombstones` | `retention` |
//! | [`evidence`] | — (reads the kernel's log) | — | — |
//! | [`users`], [`idempotency`], [`access_log`] | — | `users`, `idempotency`, `access_log` | — |
//!
//! [`member_node`] and [`commission_node`] assemble the set a node runs. Depends on the
//! kernel, `imi-domain`, `imi-audit` and `imi-scoreboard`; never on HTTP or the binary.

pub mod access_log;
pub mod alerts;
pub mod catalogue_files;
pub mod diagnostics;
pub mod directory;
pub mod error;
pub mod evidence;
pub mod facts;
pub mod idempotency;
pub mod notifications;
pub mod repositories;
pub mod requests;
pub mod retention;
pub mod services;
pub mod trust;
pub mod users;
pub mod witness;

pub use error::AppError;
pub use services::Services;

use imi_engine::{Application, Applications};
use imi_protocol::NodeSigner;
use imi_store::Column;
use std::path::PathBuf;
use std::sync::Arc;

/// An application that only owns columns (users, idempotency keys, the access log; the case
/// columns on the Commission node): no message kinds, no jobs.
#[derive(Debug, Clone, Copy)]
pub struct OwnedColumns {
    name: &'static str,
    columns: &'static [Column],
}

impl OwnedColumns {
    /// The application `name` owning `columns`.
    pub const fn new(name: &'static str, columns: &'static [Column]) -> Self {
        Self { name, columns }
    }
}

impl Application for OwnedColumns {
    fn name(&self) -> &'static str {
        self.name
    }
    fn columns(&self) -> &'static [Column] {
        self.columns
    }
}

/// The prologue of the `apply` of an application whose envelopes are steps of an object
/// (a request case, a notification, an alert): the header's `case` (`missing_case`), the
/// body decoded (`malformed_body`), and the header's step, which the log leaf records and an
/// auditor checks without the body, equal to the body's (`step_mismatch`).
pub(crate) fn stepped<B>(
    msg: &imi_engine::Inbound<'_>,
    decode: impl FnOnce(&[u8]) -> Option<B>,
    step: impl FnOnce(&B) -> &str,
) -> Result<(imi_protocol::CaseId, B), imi_protocol::RejectCode> {
    let code = |c: &str| imi_protocol::RejectCode::Application(c.into());
    let id = msg.header.case.ok_or_else(|| code("missing_case"))?;
    let body = decode(msg.body).ok_or_else(|| code("malformed_body"))?;
    if msg.header.step.as_ref().map(imi_protocol::Kind::as_str) != Some(step(&body)) {
        return Err(code("step_mismatch"));
    }
    Ok((id, body))
}

/// The names of every periodic job a node of this implementation may run, the kernel's and
/// the applications' (what `[engine] job_interval_ms` may name; a test checks that a node
/// runs no other).
pub const JOBS: &[&str] = &[
    "redial",
    "prune",
    "checkpoint",
    "witness-answers",
    "retention",
    "trust-list",
    "fact-report",
    "directory-publish",
    "directory-sync",
    "alert-grants",
];

/// The columns whose tables carry a bloom filter: the kernel's
/// ([`imi_engine::Engine::filtered_columns`]) and the idempotency keys, which every API
/// action that names one looks up and almost never finds.
pub fn filtered_columns() -> Vec<Column> {
    let mut cols: Vec<Column> = imi_engine::Engine::filtered_columns().to_vec();
    cols.push(idempotency::IDEMPOTENCY);
    cols
}

/// Every column a node of this implementation may use: the kernel's and every
/// application's (what [`member_node`] and [`commission_node`] declare is a subset; a test
/// checks it). The store is opened with these before the trust list says which
/// applications run.
pub fn columns() -> Vec<Column> {
    let mut cols: Vec<Column> = imi_engine::Engine::columns().to_vec();
    cols.extend_from_slice(requests::COLUMNS);
    cols.extend_from_slice(directory::COLUMNS);
    cols.extend_from_slice(notifications::COLUMNS);
    cols.extend_from_slice(repositories::COLUMNS);
    cols.extend_from_slice(alerts::COLUMNS);
    cols.extend_from_slice(&[
        diagnostics::APP,
        facts::FACTS,
        facts::FACTS_PENDING,
        facts::USAGE,
        facts::USAGE_PENDING,
        witness::WITNESS,
        witness::WITNESS_OUT,
        witness::ALARMS,
        retention::BLOCKED,
        retention::TOMBSTONES,
        retention::RETENTION_DUE,
        users::USERS,
        idempotency::IDEMPOTENCY,
        access_log::ACCESS_LOG,
        trust::TRUST_OFFERS,
    ]);
    cols
}

/// The applications of a node.
#[derive(Clone)]
pub struct NodeApps {
    /// Every application, for the kernel.
    pub apps: Applications,
    /// The request service.
    pub cases: Arc<requests::Cases>,
    /// Retention.
    pub retention: Arc<retention::Retention>,
    /// The directory replica.
    pub directory: Arc<directory::DirectoryApp>,
    /// Alerts.
    pub alerts: Arc<alerts::AlertApp>,
}

/// The profession codes of the node's vocabulary.
fn professions(directory: &directory::DirectoryApp) -> std::collections::BTreeSet<String> {
    directory
        .vocabulary()
        .professions()
        .iter()
        .map(|p| p.code().to_owned())
        .collect()
}

/// What every node runs: trust-list propagation, diagnostics, witnessing, users, idempotency, the access log and
/// retention.
fn common(
    signer: &NodeSigner,
    governance: [u8; 32],
    diagnostics: diagnostics::DiagnosticApp,
    retention: &Arc<retention::Retention>,
) -> Vec<Arc<dyn Application>> {
    vec![
        Arc::new(trust::TrustApp::new(governance)),
        Arc::new(diagnostics),
        Arc::new(witness::WitnessApp::new(signer.clone())),
        Arc::new(witness::CosignatureApp),
        Arc::new(users::APP),
        Arc::new(idempotency::APP),
        Arc::new(access_log::APP),
        retention.clone(),
    ]
}

/// A member state's node: the common applications, the directory (`cases` should read
/// `directory.shared()`) and requests, reporting indicator facts to `EU` when
/// `report_facts`.
pub fn member_node(
    signer: &NodeSigner,
    governance: [u8; 32],
    diagnostics: diagnostics::DiagnosticApp,
    cases: requests::Cases,
    directory: Arc<directory::DirectoryApp>,
    tombstones: Option<PathBuf>,
    report_facts: bool,
) -> NodeApps {
    let cases = Arc::new(if report_facts {
        cases.with_fact_reports()
    } else {
        cases
    });
    let retention = Arc::new(retention::Retention::new(cases.clone(), tombstones));
    let mut apps = common(signer, governance, diagnostics, &retention);
    apps.push(Arc::new(directory::DirectoryApplication(directory.clone())));
    apps.push(cases.application());
    apps.push(Arc::new(notifications::NotificationApp(cases.clone())));
    apps.push(Arc::new(repositories::RepositoryApp(cases.clone())));
    let alerts = Arc::new(alerts::AlertApp::new(
        cases.clone(),
        Some(professions(&directory)),
    ));
    apps.push(alerts.clone());
    if report_facts {
        apps.push(Arc::new(facts::FactReporter::new(imi_protocol::NodeId::EU)));
    }
    NodeApps {
        apps: Applications::new(apps),
        cases,
        retention,
        directory,
        alerts,
    }
}

/// The Commission node: the common applications, the fact reports it receives, the
/// notifications and alerts addressed to the Commission. It takes part in no request (its case columns stay empty; `imi.request` is an unknown kind here).
pub fn commission_node(
    signer: &NodeSigner,
    governance: [u8; 32],
    diagnostics: diagnostics::DiagnosticApp,
    cases: requests::Cases,
    directory: Arc<directory::DirectoryApp>,
    tombstones: Option<PathBuf>,
) -> NodeApps {
    let cases = Arc::new(cases);
    let retention = Arc::new(retention::Retention::new(cases.clone(), tombstones));
    let mut apps = common(signer, governance, diagnostics, &retention);
    // The Commission node holds no authorities and addresses none: members send it no
    // directory traffic (it gets only indicator facts); the columns exist, empty.
    apps.push(Arc::new(OwnedColumns::new("directory", directory::COLUMNS)));
    apps.push(Arc::new(facts::FactApp::default()));
    apps.push(Arc::new(requests::CASE_COLUMNS));
    // The Commission's services receive the notifications addressed to them; the
    // Commission holds no repository (its columns exist, empty).
    apps.push(Arc::new(notifications::NotificationApp(cases.clone())));
    apps.push(Arc::new(OwnedColumns::new(
        "repositories",
        repositories::COLUMNS,
    )));
    // Alerts whose type names the Commission (Services Directive Art. 29/32) reach its
    // box (`EU-COMMISSION`): the measure, never the professional's identity.
    let alerts = Arc::new(alerts::AlertApp::new(
        cases.clone(),
        Some(professions(&directory)),
    ));
    apps.push(alerts.clone());
    NodeApps {
        apps: Applications::new(apps),
        cases,
        retention,
        directory,
        alerts,
    }
}
