//! Integration tests of `imi-domain`, one binary:
//!
//! * [`alert`]: an alert's type, profession, fields, validity and sealed identity.
//! * [`catalogue`]: the shipped catalogue and the loader's validation.
//! * [`notification`]: a notification's type, recipients and fields.
//! * [`repository`]: repository access lists and entries.
//! * [`request`]: the request lifecycle state machine.
//! * [`vocabulary`]: the shipped professions and competences and the loader's validation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

// The modules live in a subdirectory so that cargo does not take each for a test binary.
#[path = "domain/alert.rs"]
mod alert;
#[path = "domain/catalogue.rs"]
mod catalogue;
#[path = "domain/notification.rs"]
mod notification;
#[path = "domain/repository.rs"]
mod repository;
#[path = "domain/request.rs"]
mod request;
#[path = "domain/vocabulary.rs"]
mod vocabulary;
