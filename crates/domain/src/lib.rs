//! `imi-domain`: the pure model of IMI — member states, competent authorities, users and
//! roles, the catalogue of legal areas, procedures and pre-translated questions, and the
//! case state machines that both nodes run on every transition. No I/O besides reading
//! catalogue files; no tokio, network or storage.
//!
//! Modules:
//!
//! * [`alert`]: alerts, with the professional's identity sealed apart (need-to-know).
//! * [`authority`]: competent authorities (id, country, names in several languages, level,
//!   legal areas and procedures handled) and an in-memory [`Directory`] looked up by id,
//!   country and area. A node holds its own country's authorities and learns the others'
//!   through the replicated directory.
//! * [`user`]: users of a national node and their [`Role`]s (authority user, national or
//!   delegated coordinator, auditor, operator) with permission helpers.
//! * [`request`]: the request-for-information lifecycle as one pure, deterministic state
//!   machine ([`create`], [`apply`]) that the sending and the receiving node both run on
//!   every transition; its errors carry stable codes for rejection receipts.
//! * [`catalogue`]: legal areas, procedures and question sets with their translations,
//!   loaded from `configs/catalogue/`.
//! * [`vocabulary`]: the controlled vocabularies of regulated professions and competence
//!   keywords that authorities are tagged with, named in every catalogue language, loaded
//!   from `configs/vocabularies/`.
//! * [`notification`]: the body of a notification and its checks (type, recipients, fields).
//! * [`repository`]: repository entries, access lists and their checks.
//! * [`limits`]: size limits and code/language well-formedness shared by the above.
//!
//! Everything that travels or is stored is serde-serializable and versioned (a `v` field).

pub mod alert;
pub mod authority;
pub mod catalogue;
/// Calendar dates and RFC 3339 times (from `imi-protocol`).
pub use imi_protocol::dates;
pub mod limits;
pub mod message;
pub mod notification;
pub mod repository;
pub mod request;
pub mod user;
pub mod vocabulary;

pub use authority::{Authority, AuthorityError, Directory, Level, country_of};
pub use request::{
    Actor, AnswerPayload, AttachmentRef, CodedAnswer, HistoryEntry, Party, Rating, Ratings,
    RequestCase, RequestState, SubjectRef, Transition, TransitionBody, TransitionError,
    TransitionKind, actions, apply, create, is_overdue,
};
pub use user::{CoordinatorScope, Role, User, UserError};
pub use vocabulary::{Competence, Profession, Sector, Vocabulary, VocabularyError};
