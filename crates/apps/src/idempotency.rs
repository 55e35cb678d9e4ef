//! Idempotency keys of API POSTs: the `idempotency` column (user id ‖ 0 ‖ key → SHA-256 of
//! the request ‖ the first response), written in the same commit as the action.
use imi_engine::Application;
use imi_store::Column;

/// Idempotency keys of API POSTs.
pub const IDEMPOTENCY: Column = "idempotency";

/// The idempotency application (owns [`IDEMPOTENCY`]).
#[derive(Debug, Default)]
pub struct IdempotencyApp;

impl Application for IdempotencyApp {
    fn name(&self) -> &'static str {
        "idempotency"
    }
    fn columns(&self) -> &'static [Column] {
        &[IDEMPOTENCY]
    }
}
