//! Idempotency keys of API POSTs: the `idempotency` column (user id ‖ 0 ‖ key → SHA-256 of
//! the request ‖ the first response), written in the same commit as the action.
use crate::OwnedColumns;
use imi_store::Column;

/// Idempotency keys of API POSTs.
pub const IDEMPOTENCY: Column = "idempotency";

/// The idempotency application (owns [`IDEMPOTENCY`]).
pub const APP: OwnedColumns = OwnedColumns::new("idempotency", &[IDEMPOTENCY]);
