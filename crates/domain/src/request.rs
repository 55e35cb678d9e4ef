//! The request lifecycle: one state machine that both nodes run on every transition.
//!
//! A request is a one-to-one exchange: a *requester* authority asks a *responder* authority
//! (normally in another country) a set of pre-translated questions (catalogue codes) about
//! a subject, and says by when it needs the answer. Every step is a [`Transition`] sent in a
//! signed envelope; the sending node computes the new case with [`apply`] (or [`create`]
//! for the first step) and the receiving node runs the very same function on what it
//! received, rejecting with the [`TransitionError::code`] in its receipt if it fails. The
//! functions are pure and deterministic: no clock (the time `at` is the envelope's signed
//! creation time), no randomness, no hash maps, and the input case is never modified.
//!
//! # States and who may do what
//!
//! | step | by | from | to |
//! |---|---|---|---|
//! | `create` | requester | (none) | `sent` |
//! | `accept` | responder | `sent` | `accepted` |
//! | `forward` | responder | `sent`, `accepted` | `sent` at the new responder (same country, not itself) |
//! | `propose_deadline` | responder | `accepted` | `deadline_proposed` |
//! | `accept_deadline` | requester | `deadline_proposed` | `accepted`, `answer_by` = proposal |
//! | `refuse_deadline` | requester | `deadline_proposed` | `accepted`, `answer_by` unchanged |
//! | `answer` | responder | `accepted`, `deadline_proposed` (drops the proposal) | `answered` |
//! | `request_info` | responder | `accepted` (clarification) | `info_requested{by: responder}` |
//! | `request_info` | requester | `answered` (further information) | `info_requested{by: requester}` |
//! | `provide_info` | the other party | `info_requested` | `accepted` resp. `answered` |
//! | `close` | requester | `answered`, `info_requested{by: requester}` | `closed` (terminal) |
//! | `withdraw` | requester | any non-terminal state | `withdrawn` (terminal) |
//! | `refer` | either party | `sent` .. `answered` (not when already referred) | `referred` to the coordinator of the responder's country |
//! | `reassign` | that coordinator | `referred` | `sent` at another authority of the coordinator's country |
//! | `resolve` | that coordinator | `referred` | the state before the referral |
//!
//! Design decisions:
//!
//! * The responder must accept before answering (the acceptance time is scoreboard
//!   indicator 1); answering before acceptance is `invalid_transition`.
//! * Additional information flows both ways: the responder may ask the requester for a
//!   clarification while working on the request, and the requester may ask for further
//!   information after an answer. Whoever asked, the other party provides it.
//! * A deadline proposal is pending until the requester accepts or refuses it; the
//!   responder may still answer meanwhile (the proposal then lapses).
//! * A referral goes to the IMI coordinator of the responder's country, the only one who
//!   can pick another responder. A coordinator is an [`Actor`] with `coordinator: true`
//!   whose `country` is that country; whether a user coordinates the case's legal area is
//!   decided by the caller (see [`crate::user::User::actor`]).
//! * Whether codes exist in the catalogue, whether target authorities exist in the
//!   directory and whether the requester's node may send to the responder's node is for
//!   callers to check; this module checks the shape, the parties and the lifecycle.
//!   Answers must refer to questions of the case (`unknown_question`).
//! * Time is not required to be monotonic across the two nodes' clocks; `at` is recorded
//!   as given.
use crate::authority::country_of;
use crate::dates::Date;
use crate::limits::{
    MAX_ATTACHMENTS, MAX_CHOICES, MAX_HISTORY, MAX_NAME_BYTES, MAX_QUESTIONS, MAX_SUBJECT_BYTES,
    MAX_TEXT_BYTES, valid_code,
};
use imi_protocol::clock::Timestamp;
use imi_protocol::ids::{AuthorityId, CaseId, NodeId};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
use std::collections::BTreeSet;
use std::fmt;

/// The version of the [`RequestCase`] encoding.
pub const CASE_VERSION: u16 = 1;
/// The version of the [`TransitionBody`] encoding.
pub const TRANSITION_VERSION: u16 = 1;

// ---------------------------------------------------------------------------------------
// Small value types
// ---------------------------------------------------------------------------------------

/// A SHA-256 digest, serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        fn nibble(b: u8) -> Option<u8> {
            match b {
                b'0'..=b'9' => Some(b - b'0'),
                b'a'..=b'f' => Some(b - b'a' + 10),
                b'A'..=b'F' => Some(b - b'A' + 10),
                _ => None,
            }
        }
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (*hi, *lo),
                _ => return None,
            };
            *o = (nibble(hi)? << 4) | nibble(lo)?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::from_hex(&s).ok_or_else(|| D::Error::custom("expected 64 hex digits"))
    }
}

/// A file attached to a step. The bytes travel and are stored separately (encrypted);
/// the case holds only this reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// File name as given by the sender (no path).
    pub name: String,
    /// SHA-256 of the plaintext bytes.
    pub sha256: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// An opaque handle to the encrypted personal data of the request's subject (a person or
/// a business). The data itself is encrypted under the case key elsewhere; the state
/// machine only carries the handle.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubjectRef(pub String);

/// The 5-point satisfaction scale of the IMI scoreboard (indicators 4 and 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    /// Very dissatisfied.
    VeryDissatisfied,
    /// Dissatisfied.
    Dissatisfied,
    /// Neutral / not sure.
    Neutral,
    /// Satisfied.
    Satisfied,
    /// Very satisfied.
    VerySatisfied,
}

impl Rating {
    /// All five, worst first.
    pub const ALL: [Rating; 5] = [
        Rating::VeryDissatisfied,
        Rating::Dissatisfied,
        Rating::Neutral,
        Rating::Satisfied,
        Rating::VerySatisfied,
    ];

    /// 1 (very dissatisfied) to 5 (very satisfied).
    pub fn score(&self) -> u8 {
        match self {
            Rating::VeryDissatisfied => 1,
            Rating::Dissatisfied => 2,
            Rating::Neutral => 3,
            Rating::Satisfied => 4,
            Rating::VerySatisfied => 5,
        }
    }

    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rating::VeryDissatisfied => "very_dissatisfied",
            Rating::Dissatisfied => "dissatisfied",
            Rating::Neutral => "neutral",
            Rating::Satisfied => "satisfied",
            Rating::VerySatisfied => "very_satisfied",
        }
    }
}

/// The requester's optional ratings given when closing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ratings {
    /// Timeliness of the reply (indicator 4).
    pub timeliness: Option<Rating>,
    /// Efforts made (indicator 5).
    pub efforts: Option<Rating>,
}

/// The value of one coded answer. The catalogue says which type a question expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum AnswerPayload {
    /// Yes / no.
    Bool(bool),
    /// Free text (translated by the reader's node if needed).
    Text(String),
    /// An integer (counts, amounts in cents, years).
    Number(i64),
    /// A date, ms since the epoch (UTC).
    Date(Timestamp),
    /// One catalogue choice code.
    Choice(String),
    /// Several catalogue choice codes.
    Choices(Vec<String>),
    /// The information is not available to the responder.
    NotAvailable,
}

/// The answer to one question of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodedAnswer {
    /// The question code, one of the case's questions.
    pub question: String,
    /// The answer.
    pub answer: AnswerPayload,
}

/// One side of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    /// The authority that sent the request.
    Requester,
    /// The authority currently asked to answer.
    Responder,
}

impl Party {
    /// The other side.
    pub fn other(self) -> Party {
        match self {
            Party::Requester => Party::Responder,
            Party::Responder => Party::Requester,
        }
    }

    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Party::Requester => "requester",
            Party::Responder => "responder",
        }
    }
}

/// Who performs a transition: an authority, its country (the sending node, from the
/// signed envelope) and whether the acting user is an IMI coordinator for the case's
/// legal area in that country.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The acting authority.
    pub authority: AuthorityId,
    /// Its country; must match the authority id's prefix.
    pub country: NodeId,
    /// Whether the user acts as IMI coordinator of `country` for the case's area.
    pub coordinator: bool,
}

// ---------------------------------------------------------------------------------------
// States and transitions
// ---------------------------------------------------------------------------------------

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RequestState {
    /// Sent to (or forwarded/reassigned to) the current responder, not yet accepted.
    Sent,
    /// Accepted by the responder.
    Accepted,
    /// The responder proposed a new deadline; the requester has not decided yet.
    DeadlineProposed {
        /// The proposed answer date, ms.
        proposed: Timestamp,
    },
    /// One party asked the other for additional information.
    InfoRequested {
        /// Who asked (the other party must provide it).
        by: Party,
    },
    /// The responder answered.
    Answered,
    /// Referred to the IMI coordinator of a country because the parties disagree.
    Referred {
        /// The country whose coordinator handles the referral (the responder's).
        coordinator: NodeId,
        /// Who referred.
        by: Party,
        /// The state to return to if the coordinator resolves without reassigning.
        resume: Box<RequestState>,
    },
    /// Closed by the requester (terminal).
    Closed,
    /// Withdrawn by the requester (terminal).
    Withdrawn,
}

impl RequestState {
    /// The snake_case name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            RequestState::Sent => "sent",
            RequestState::Accepted => "accepted",
            RequestState::DeadlineProposed { .. } => "deadline_proposed",
            RequestState::InfoRequested { .. } => "info_requested",
            RequestState::Answered => "answered",
            RequestState::Referred { .. } => "referred",
            RequestState::Closed => "closed",
            RequestState::Withdrawn => "withdrawn",
        }
    }

    /// Closed and withdrawn are terminal: no transition leaves them.
    pub fn is_terminal(&self) -> bool {
        matches!(self, RequestState::Closed | RequestState::Withdrawn)
    }
}

/// The kind of a transition, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum TransitionKind {
    Create,
    Accept,
    Forward,
    ProposeDeadline,
    AcceptDeadline,
    RefuseDeadline,
    Answer,
    RequestInfo,
    ProvideInfo,
    Close,
    Withdraw,
    Refer,
    Reassign,
    Resolve,
}

impl TransitionKind {
    /// Every kind.
    pub const ALL: [TransitionKind; 14] = [
        TransitionKind::Create,
        TransitionKind::Accept,
        TransitionKind::Forward,
        TransitionKind::ProposeDeadline,
        TransitionKind::AcceptDeadline,
        TransitionKind::RefuseDeadline,
        TransitionKind::Answer,
        TransitionKind::RequestInfo,
        TransitionKind::ProvideInfo,
        TransitionKind::Close,
        TransitionKind::Withdraw,
        TransitionKind::Refer,
        TransitionKind::Reassign,
        TransitionKind::Resolve,
    ];

    /// The snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            TransitionKind::Create => "create",
            TransitionKind::Accept => "accept",
            TransitionKind::Forward => "forward",
            TransitionKind::ProposeDeadline => "propose_deadline",
            TransitionKind::AcceptDeadline => "accept_deadline",
            TransitionKind::RefuseDeadline => "refuse_deadline",
            TransitionKind::Answer => "answer",
            TransitionKind::RequestInfo => "request_info",
            TransitionKind::ProvideInfo => "provide_info",
            TransitionKind::Close => "close",
            TransitionKind::Withdraw => "withdraw",
            TransitionKind::Refer => "refer",
            TransitionKind::Reassign => "reassign",
            TransitionKind::Resolve => "resolve",
        }
    }
}

impl fmt::Display for TransitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of the lifecycle with its data. Travels in an envelope body inside a
/// [`TransitionBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Transition {
    /// Create and send the request (requester).
    Create {
        /// The requesting authority (must be the actor).
        requester: AuthorityId,
        /// The authority asked.
        responder: AuthorityId,
        /// Legal area code.
        area: String,
        /// Procedure code.
        procedure: String,
        /// Chosen question codes, distinct.
        questions: Vec<String>,
        /// Free text.
        free_text: String,
        /// Attachments.
        attachments: Vec<AttachmentRef>,
        /// Handle to the encrypted subject data.
        subject: SubjectRef,
        /// Date by which an answer is needed, ms; after `at`.
        answer_by: Timestamp,
    },
    /// Accept the request (responder).
    Accept,
    /// Forward to another authority of the responder's country (responder).
    Forward {
        /// The new responder.
        to: AuthorityId,
    },
    /// Propose a new answer date (responder).
    ProposeDeadline {
        /// The proposed date, ms; after `at`.
        new: Timestamp,
    },
    /// Accept the proposed date (requester).
    AcceptDeadline,
    /// Refuse the proposed date (requester).
    RefuseDeadline,
    /// Answer (responder).
    Answer {
        /// Coded answers to questions of the case, each question at most once.
        answers: Vec<CodedAnswer>,
        /// Free text.
        free_text: String,
        /// Attachments.
        attachments: Vec<AttachmentRef>,
    },
    /// Ask the other party for additional information.
    RequestInfo {
        /// The question.
        text: String,
    },
    /// Provide the additional information asked for.
    ProvideInfo {
        /// The information.
        text: String,
        /// Attachments.
        attachments: Vec<AttachmentRef>,
    },
    /// Close the answered request, optionally rating it (requester).
    Close {
        /// Timeliness rating.
        timeliness: Option<Rating>,
        /// Efforts rating.
        efforts: Option<Rating>,
    },
    /// Withdraw the request (requester).
    Withdraw {
        /// Why.
        reason: String,
    },
    /// Refer to the IMI coordinator of the responder's country (either party).
    Refer {
        /// What the parties disagree about.
        reason: String,
    },
    /// Give the request to another authority of the coordinator's country (coordinator).
    Reassign {
        /// The new responder.
        to: AuthorityId,
    },
    /// End the referral without reassigning; the case resumes where it was (coordinator).
    Resolve {
        /// The coordinator's note (may be empty).
        note: String,
    },
}

impl Transition {
    /// The kind of this transition.
    pub fn kind(&self) -> TransitionKind {
        match self {
            Transition::Create { .. } => TransitionKind::Create,
            Transition::Accept => TransitionKind::Accept,
            Transition::Forward { .. } => TransitionKind::Forward,
            Transition::ProposeDeadline { .. } => TransitionKind::ProposeDeadline,
            Transition::AcceptDeadline => TransitionKind::AcceptDeadline,
            Transition::RefuseDeadline => TransitionKind::RefuseDeadline,
            Transition::Answer { .. } => TransitionKind::Answer,
            Transition::RequestInfo { .. } => TransitionKind::RequestInfo,
            Transition::ProvideInfo { .. } => TransitionKind::ProvideInfo,
            Transition::Close { .. } => TransitionKind::Close,
            Transition::Withdraw { .. } => TransitionKind::Withdraw,
            Transition::Refer { .. } => TransitionKind::Refer,
            Transition::Reassign { .. } => TransitionKind::Reassign,
            Transition::Resolve { .. } => TransitionKind::Resolve,
        }
    }
}

/// A transition as it travels in an envelope body: versioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionBody {
    /// Encoding version, [`TRANSITION_VERSION`].
    pub v: u16,
    /// The step.
    pub transition: Transition,
}

impl TransitionBody {
    /// Wraps a transition with the current version.
    pub fn new(transition: Transition) -> Self {
        Self {
            v: TRANSITION_VERSION,
            transition,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The case
// ---------------------------------------------------------------------------------------

/// One line of the case history: who did what when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When (the transition's `at`), ms.
    pub at: Timestamp,
    /// The acting authority.
    pub actor: AuthorityId,
    /// Whether it acted as IMI coordinator.
    pub coordinator: bool,
    /// What it did.
    pub kind: TransitionKind,
    /// A short English summary without free text or personal data.
    pub summary: String,
}

/// One answer given by a responder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRound {
    /// When, ms.
    pub at: Timestamp,
    /// The responder that answered.
    pub by: AuthorityId,
    /// Coded answers.
    pub answers: Vec<CodedAnswer>,
    /// Free text.
    pub free_text: String,
    /// Attachments.
    pub attachments: Vec<AttachmentRef>,
}

/// A free-text message of a step: an information request or reply, a withdrawal or
/// referral reason, a coordinator's note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// When, ms.
    pub at: Timestamp,
    /// Who wrote it.
    pub by: AuthorityId,
    /// With which step.
    pub kind: TransitionKind,
    /// The text.
    pub text: String,
    /// Attachments.
    pub attachments: Vec<AttachmentRef>,
}

/// A request for information and everything that happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCase {
    /// Encoding version, [`CASE_VERSION`].
    pub v: u16,
    /// The case id.
    pub id: CaseId,
    /// The requesting authority.
    pub requester: AuthorityId,
    /// The current responder (changes on forward and reassign, always in one country).
    pub responder: AuthorityId,
    /// Legal area code.
    pub area: String,
    /// Procedure code.
    pub procedure: String,
    /// Question codes asked.
    pub questions: Vec<String>,
    /// The request's free text.
    pub free_text: String,
    /// The request's attachments.
    pub attachments: Vec<AttachmentRef>,
    /// Handle to the encrypted subject data.
    pub subject: SubjectRef,
    /// Where it stands.
    pub state: RequestState,
    /// The agreed answer date, ms: the requested one, or an accepted proposal.
    pub answer_by: Timestamp,
    /// The answer date originally requested, ms.
    pub requested_answer_by: Timestamp,
    /// When it was created and sent, ms.
    pub created: Timestamp,
    /// When the current responder accepted it, ms.
    pub accepted_at: Option<Timestamp>,
    /// When the current responder first answered, ms.
    pub answered_at: Option<Timestamp>,
    /// When it was closed or withdrawn, ms.
    pub ended_at: Option<Timestamp>,
    /// Every answer given.
    pub answers: Vec<AnswerRound>,
    /// Free-text messages of the steps.
    pub notes: Vec<Note>,
    /// The requester's ratings (set on close).
    pub ratings: Ratings,
    /// Every successful transition, oldest first.
    pub history: Vec<HistoryEntry>,
}

impl RequestCase {
    /// Which party `authority` is, if any.
    pub fn party_of(&self, authority: &AuthorityId) -> Option<Party> {
        if authority == &self.requester {
            Some(Party::Requester)
        } else if authority == &self.responder {
            Some(Party::Responder)
        } else {
            None
        }
    }

    /// See [`is_overdue`].
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        is_overdue(self, now)
    }

    /// Whether the first answer came by the agreed date; `None` while unanswered.
    pub fn answered_on_time(&self) -> Option<bool> {
        self.answered_at.map(|a| a <= self.answer_by)
    }
}

/// Whether the request is overdue at `now`: the agreed answer date has passed and the
/// current responder has not answered, and it is neither closed nor withdrawn.
pub fn is_overdue(case: &RequestCase, now: Timestamp) -> bool {
    now > case.answer_by && case.answered_at.is_none() && !case.state.is_terminal()
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// How much earlier than the previous step of its case a step may be dated: the clock skew
/// tolerated between two nodes, ms (the protocol's time rule).
pub use imi_protocol::clock::MAX_STEP_CLOCK_SKEW_MS;

/// Why a transition is refused. [`TransitionError::code`] goes into rejection receipts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The step is not allowed in the current state.
    #[error("{kind} is not allowed in state {state}")]
    InvalidTransition {
        /// The step tried.
        kind: TransitionKind,
        /// The current state's name (`none` before creation).
        state: &'static str,
    },
    /// The actor is neither requester nor responder.
    #[error("the actor is not a party to the case")]
    NotParty,
    /// The actor is a party, but the other party does this step.
    #[error("only the {expected} may {kind}")]
    WrongParty {
        /// The step tried.
        kind: TransitionKind,
        /// Who may do it.
        expected: &'static str,
    },
    /// The step needs the IMI coordinator of the referral's country.
    #[error("only the coordinator of the referral's country may {0}")]
    NotCoordinator(TransitionKind),
    /// The actor's country does not match its authority id.
    #[error("the actor's authority is not of its country")]
    BadActor,
    /// An authority id without a country prefix.
    #[error("authority {0} has no country prefix")]
    BadAuthority(String),
    /// Forwarding to an authority of another country.
    #[error("cannot forward abroad")]
    ForwardAbroad,
    /// Reassigning to an authority outside the coordinator's country.
    #[error("cannot reassign abroad")]
    ReassignAbroad,
    /// Requester and responder would be the same, or the target is already a party.
    #[error("the target authority is already a party")]
    SameAuthority,
    /// A deadline not after the transition time.
    #[error("deadline is not in the future")]
    DeadlineInPast,
    /// A proposed deadline equal to the current one.
    #[error("the proposed deadline is the current one")]
    DeadlineUnchanged,
    /// An answer to a question the request did not ask.
    #[error("question {0:?} was not asked")]
    UnknownQuestion(String),
    /// A question listed twice.
    #[error("question {0:?} appears twice")]
    DuplicateQuestion(String),
    /// A malformed code.
    #[error("bad code {0:?}")]
    BadCode(String),
    /// A required field is empty.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// A field exceeds its limit.
    #[error("{0} is too large")]
    TooLarge(&'static str),
    /// A malformed attachment reference.
    #[error("bad attachment")]
    BadAttachment,
    /// The case or transition has an encoding version this code does not know.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u16),
    /// The transition names another case.
    #[error("the transition is for another case")]
    WrongCase,
    /// The step is dated before the previous step of the case (beyond the clock skew
    /// [`MAX_STEP_CLOCK_SKEW_MS`] allowed between two nodes).
    #[error("the step is dated before the previous step of the case")]
    TimeBeforePrevious,
}

impl TransitionError {
    /// A stable, machine-readable code for receipts and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            TransitionError::InvalidTransition { .. } => "invalid_transition",
            TransitionError::NotParty => "not_party",
            TransitionError::WrongParty { .. } => "wrong_party",
            TransitionError::NotCoordinator(_) => "not_coordinator",
            TransitionError::BadActor => "bad_actor",
            TransitionError::BadAuthority(_) => "bad_authority",
            TransitionError::ForwardAbroad => "forward_abroad",
            TransitionError::ReassignAbroad => "reassign_abroad",
            TransitionError::SameAuthority => "same_authority",
            TransitionError::DeadlineInPast => "deadline_in_past",
            TransitionError::DeadlineUnchanged => "deadline_unchanged",
            TransitionError::UnknownQuestion(_) => "unknown_question",
            TransitionError::DuplicateQuestion(_) => "duplicate_question",
            TransitionError::BadCode(_) => "bad_code",
            TransitionError::Missing(_) => "missing",
            TransitionError::TooLarge(_) => "too_large",
            TransitionError::BadAttachment => "bad_attachment",
            TransitionError::UnsupportedVersion(_) => "unsupported_version",
            TransitionError::WrongCase => "wrong_case",
            TransitionError::TimeBeforePrevious => "time_before_previous",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Validation helpers
// ---------------------------------------------------------------------------------------

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

fn check_code(c: &str) -> Result<(), TransitionError> {
    if valid_code(c) {
        Ok(())
    } else {
        Err(TransitionError::BadCode(short(c)))
    }
}

fn check_text(t: &str, what: &'static str) -> Result<(), TransitionError> {
    if t.len() > MAX_TEXT_BYTES {
        Err(TransitionError::TooLarge(what))
    } else {
        Ok(())
    }
}

fn check_required_text(t: &str, what: &'static str) -> Result<(), TransitionError> {
    check_text(t, what)?;
    if t.trim().is_empty() {
        Err(TransitionError::Missing(what))
    } else {
        Ok(())
    }
}

fn check_attachments(list: &[AttachmentRef]) -> Result<(), TransitionError> {
    if list.len() > MAX_ATTACHMENTS {
        return Err(TransitionError::TooLarge("attachments"));
    }
    for a in list {
        let bad_name = a.name.trim().is_empty()
            || a.name.len() > MAX_NAME_BYTES
            || a.name == "."
            || a.name == ".."
            || a.name
                .chars()
                .any(|c| c.is_control() || c == '/' || c == '\\');
        if bad_name {
            return Err(TransitionError::BadAttachment);
        }
    }
    Ok(())
}

fn check_answer(p: &AnswerPayload) -> Result<(), TransitionError> {
    match p {
        AnswerPayload::Text(t) => check_text(t, "answer text"),
        AnswerPayload::Choice(c) => check_code(c),
        AnswerPayload::Choices(cs) => {
            if cs.len() > MAX_CHOICES {
                return Err(TransitionError::TooLarge("choices"));
            }
            cs.iter().try_for_each(|c| check_code(c))
        }
        AnswerPayload::Bool(_)
        | AnswerPayload::Number(_)
        | AnswerPayload::Date(_)
        | AnswerPayload::NotAvailable => Ok(()),
    }
}

fn check_actor(actor: &Actor) -> Result<(), TransitionError> {
    if country_of(&actor.authority) == Some(actor.country) {
        Ok(())
    } else {
        Err(TransitionError::BadActor)
    }
}

fn country(id: &AuthorityId) -> Result<NodeId, TransitionError> {
    country_of(id).ok_or_else(|| TransitionError::BadAuthority(short(id.as_str())))
}

fn require(
    case: &RequestCase,
    actor: &Actor,
    want: Party,
    kind: TransitionKind,
) -> Result<(), TransitionError> {
    match case.party_of(&actor.authority) {
        None => Err(TransitionError::NotParty),
        Some(p) if p == want => Ok(()),
        Some(_) => Err(TransitionError::WrongParty {
            kind,
            expected: want.as_str(),
        }),
    }
}

fn rating_text(r: Option<Rating>) -> &'static str {
    r.map_or("none", |r| r.as_str())
}

// ---------------------------------------------------------------------------------------
// The state machine
// ---------------------------------------------------------------------------------------

/// Creates a case from a `Create` transition performed by `actor` at `at`.
///
/// Checks: the actor is the requester and of its country; requester and responder have
/// country prefixes and differ; codes are well-formed and questions distinct; there is at
/// least one question or some free text; sizes are within [`crate::limits`]; the subject
/// handle is present; `answer_by` is after `at`.
pub fn create(
    id: CaseId,
    actor: &Actor,
    t: &Transition,
    at: Timestamp,
) -> Result<RequestCase, TransitionError> {
    let Transition::Create {
        requester,
        responder,
        area,
        procedure,
        questions,
        free_text,
        attachments,
        subject,
        answer_by,
    } = t
    else {
        return Err(TransitionError::InvalidTransition {
            kind: t.kind(),
            state: "none",
        });
    };
    check_actor(actor)?;
    if &actor.authority != requester {
        return Err(TransitionError::NotParty);
    }
    country(requester)?;
    let responder_country = country(responder)?;
    if requester == responder {
        return Err(TransitionError::SameAuthority);
    }
    check_code(area)?;
    check_code(procedure)?;
    if questions.len() > MAX_QUESTIONS {
        return Err(TransitionError::TooLarge("questions"));
    }
    let mut seen = BTreeSet::new();
    for q in questions {
        check_code(q)?;
        if !seen.insert(q.as_str()) {
            return Err(TransitionError::DuplicateQuestion(short(q)));
        }
    }
    check_text(free_text, "free text")?;
    if questions.is_empty() && free_text.trim().is_empty() {
        return Err(TransitionError::Missing("questions"));
    }
    check_attachments(attachments)?;
    if subject.0.len() > MAX_SUBJECT_BYTES {
        return Err(TransitionError::TooLarge("subject"));
    }
    if subject.0.trim().is_empty() {
        return Err(TransitionError::Missing("subject"));
    }
    if *answer_by <= at {
        return Err(TransitionError::DeadlineInPast);
    }
    let summary = format!(
        "sent to {responder} ({responder_country}), {area}/{procedure}, {} question(s), answer by {}",
        questions.len(),
        Date::of_ms(*answer_by)
    );
    Ok(RequestCase {
        v: CASE_VERSION,
        id,
        requester: requester.clone(),
        responder: responder.clone(),
        area: area.clone(),
        procedure: procedure.clone(),
        questions: questions.clone(),
        free_text: free_text.clone(),
        attachments: attachments.clone(),
        subject: subject.clone(),
        state: RequestState::Sent,
        answer_by: *answer_by,
        requested_answer_by: *answer_by,
        created: at,
        accepted_at: None,
        answered_at: None,
        ended_at: None,
        answers: Vec::new(),
        notes: Vec::new(),
        ratings: Ratings::default(),
        history: vec![HistoryEntry {
            at,
            actor: actor.authority.clone(),
            coordinator: actor.coordinator,
            kind: TransitionKind::Create,
            summary,
        }],
    })
}

/// Applies one transition by `actor` at `at` to `case` and returns the new case; `case`
/// itself is never changed. On success the new case has one more [`HistoryEntry`].
/// `Create` is refused here (use [`create`]).
pub fn apply(
    case: &RequestCase,
    actor: &Actor,
    t: &Transition,
    at: Timestamp,
) -> Result<RequestCase, TransitionError> {
    if case.v != CASE_VERSION {
        return Err(TransitionError::UnsupportedVersion(case.v));
    }
    check_actor(actor)?;
    let kind = t.kind();
    let invalid = || TransitionError::InvalidTransition {
        kind,
        state: case.state.name(),
    };
    if case.state.is_terminal() && case.party_of(&actor.authority).is_some() {
        return Err(invalid());
    }
    if case.history.len() >= MAX_HISTORY {
        return Err(TransitionError::TooLarge("history"));
    }
    // Steps are signed by two nodes with two clocks: a step may not be dated before the
    // previous one by more than their allowed skew (a responder cannot date its answer
    // before the request).
    if case
        .history
        .last()
        .is_some_and(|h| at.saturating_add(MAX_STEP_CLOCK_SKEW_MS) < h.at)
    {
        return Err(TransitionError::TimeBeforePrevious);
    }
    let mut next = case.clone();
    let note = |text: &str, attachments: &[AttachmentRef]| Note {
        at,
        by: actor.authority.clone(),
        kind,
        text: text.to_owned(),
        attachments: attachments.to_vec(),
    };
    let summary: String = match t {
        Transition::Create { .. } => return Err(invalid()),

        Transition::Accept => {
            require(case, actor, Party::Responder, kind)?;
            if case.state != RequestState::Sent {
                return Err(invalid());
            }
            next.state = RequestState::Accepted;
            next.accepted_at = Some(at);
            "accepted".to_owned()
        }

        Transition::Forward { to } => {
            require(case, actor, Party::Responder, kind)?;
            if !matches!(case.state, RequestState::Sent | RequestState::Accepted) {
                return Err(invalid());
            }
            if country(to)? != country(&case.responder)? {
                return Err(TransitionError::ForwardAbroad);
            }
            if to == &case.responder || to == &case.requester {
                return Err(TransitionError::SameAuthority);
            }
            next.responder = to.clone();
            next.state = RequestState::Sent;
            next.accepted_at = None;
            format!("forwarded from {} to {to}", case.responder)
        }

        Transition::ProposeDeadline { new } => {
            require(case, actor, Party::Responder, kind)?;
            if case.state != RequestState::Accepted {
                return Err(invalid());
            }
            if *new <= at {
                return Err(TransitionError::DeadlineInPast);
            }
            if *new == case.answer_by {
                return Err(TransitionError::DeadlineUnchanged);
            }
            next.state = RequestState::DeadlineProposed { proposed: *new };
            format!(
                "proposed new deadline {} (was {})",
                Date::of_ms(*new),
                Date::of_ms(case.answer_by)
            )
        }

        Transition::AcceptDeadline | Transition::RefuseDeadline => {
            require(case, actor, Party::Requester, kind)?;
            let RequestState::DeadlineProposed { proposed } = case.state else {
                return Err(invalid());
            };
            next.state = RequestState::Accepted;
            if kind == TransitionKind::AcceptDeadline {
                next.answer_by = proposed;
                format!("accepted new deadline {}", Date::of_ms(proposed))
            } else {
                format!(
                    "refused new deadline {proposed}, deadline stays {}",
                    case.answer_by
                )
            }
        }

        Transition::Answer {
            answers,
            free_text,
            attachments,
        } => {
            require(case, actor, Party::Responder, kind)?;
            if !matches!(
                case.state,
                RequestState::Accepted | RequestState::DeadlineProposed { .. }
            ) {
                return Err(invalid());
            }
            if answers.len() > MAX_QUESTIONS {
                return Err(TransitionError::TooLarge("answers"));
            }
            let mut seen = BTreeSet::new();
            for a in answers {
                check_code(&a.question)?;
                if !case.questions.iter().any(|q| q == &a.question) {
                    return Err(TransitionError::UnknownQuestion(short(&a.question)));
                }
                if !seen.insert(a.question.as_str()) {
                    return Err(TransitionError::DuplicateQuestion(short(&a.question)));
                }
                check_answer(&a.answer)?;
            }
            check_text(free_text, "free text")?;
            check_attachments(attachments)?;
            if answers.is_empty() && free_text.trim().is_empty() && attachments.is_empty() {
                return Err(TransitionError::Missing("answer"));
            }
            next.state = RequestState::Answered;
            next.answered_at = Some(case.answered_at.unwrap_or(at));
            next.answers.push(AnswerRound {
                at,
                by: actor.authority.clone(),
                answers: answers.clone(),
                free_text: free_text.clone(),
                attachments: attachments.clone(),
            });
            format!(
                "answered {} of {} question(s), {} attachment(s)",
                answers.len(),
                case.questions.len(),
                attachments.len()
            )
        }

        Transition::RequestInfo { text } => {
            let party = case
                .party_of(&actor.authority)
                .ok_or(TransitionError::NotParty)?;
            let allowed = matches!(
                (party, &case.state),
                (Party::Responder, RequestState::Accepted)
                    | (Party::Requester, RequestState::Answered)
            );
            if !allowed {
                return Err(invalid());
            }
            check_required_text(text, "text")?;
            next.state = RequestState::InfoRequested { by: party };
            next.notes.push(note(text, &[]));
            format!("{} asked for additional information", party.as_str())
        }

        Transition::ProvideInfo { text, attachments } => {
            let party = case
                .party_of(&actor.authority)
                .ok_or(TransitionError::NotParty)?;
            let RequestState::InfoRequested { by } = case.state else {
                return Err(invalid());
            };
            if party == by {
                return Err(TransitionError::WrongParty {
                    kind,
                    expected: by.other().as_str(),
                });
            }
            check_text(text, "text")?;
            check_attachments(attachments)?;
            if text.trim().is_empty() && attachments.is_empty() {
                return Err(TransitionError::Missing("information"));
            }
            next.state = match by {
                Party::Responder => RequestState::Accepted,
                Party::Requester => RequestState::Answered,
            };
            next.notes.push(note(text, attachments));
            format!(
                "{} provided additional information, {} attachment(s)",
                party.as_str(),
                attachments.len()
            )
        }

        Transition::Close {
            timeliness,
            efforts,
        } => {
            require(case, actor, Party::Requester, kind)?;
            let allowed = matches!(
                case.state,
                RequestState::Answered
                    | RequestState::InfoRequested {
                        by: Party::Requester
                    }
            );
            if !allowed {
                return Err(invalid());
            }
            next.state = RequestState::Closed;
            next.ended_at = Some(at);
            next.ratings = Ratings {
                timeliness: *timeliness,
                efforts: *efforts,
            };
            format!(
                "closed; timeliness: {}, efforts: {}",
                rating_text(*timeliness),
                rating_text(*efforts)
            )
        }

        Transition::Withdraw { reason } => {
            require(case, actor, Party::Requester, kind)?;
            if case.state.is_terminal() {
                return Err(invalid());
            }
            check_required_text(reason, "reason")?;
            next.state = RequestState::Withdrawn;
            next.ended_at = Some(at);
            next.notes.push(note(reason, &[]));
            format!("withdrawn in state {}", case.state.name())
        }

        Transition::Refer { reason } => {
            let party = case
                .party_of(&actor.authority)
                .ok_or(TransitionError::NotParty)?;
            if case.state.is_terminal() || matches!(case.state, RequestState::Referred { .. }) {
                return Err(invalid());
            }
            check_required_text(reason, "reason")?;
            let coordinator = country(&case.responder)?;
            next.state = RequestState::Referred {
                coordinator,
                by: party,
                resume: Box::new(case.state.clone()),
            };
            next.notes.push(note(reason, &[]));
            format!(
                "{} referred the case to the coordinator of {coordinator}",
                party.as_str()
            )
        }

        Transition::Reassign { to } => {
            let RequestState::Referred { coordinator, .. } = &case.state else {
                return Err(invalid());
            };
            if !actor.coordinator || actor.country != *coordinator {
                return Err(TransitionError::NotCoordinator(kind));
            }
            if country(to)? != *coordinator {
                return Err(TransitionError::ReassignAbroad);
            }
            if to == &case.responder || to == &case.requester {
                return Err(TransitionError::SameAuthority);
            }
            next.responder = to.clone();
            next.state = RequestState::Sent;
            next.accepted_at = None;
            next.answered_at = None;
            format!("coordinator reassigned from {} to {to}", case.responder)
        }

        Transition::Resolve { note: text } => {
            let RequestState::Referred {
                coordinator,
                resume,
                ..
            } = &case.state
            else {
                return Err(invalid());
            };
            if !actor.coordinator || actor.country != *coordinator {
                return Err(TransitionError::NotCoordinator(kind));
            }
            check_text(text, "note")?;
            next.state = (**resume).clone();
            if !text.trim().is_empty() {
                next.notes.push(note(text, &[]));
            }
            format!(
                "coordinator resolved the referral, back to {}",
                resume.name()
            )
        }
    };
    next.history.push(HistoryEntry {
        at,
        actor: actor.authority.clone(),
        coordinator: actor.coordinator,
        kind,
        summary,
    });
    Ok(next)
}

/// The steps `actor` may take on `case` in its current state, in [`TransitionKind::ALL`]'s
/// order: what [`apply`] would accept from this actor with valid data (a well-formed
/// date, text, authority). The web application offers exactly these; the request
/// application still runs [`apply`] on every step.
pub fn actions(case: &RequestCase, actor: &Actor) -> Vec<TransitionKind> {
    use TransitionKind as K;
    if case.state.is_terminal() {
        return Vec::new();
    }
    let party = case.party_of(&actor.authority);
    let st = &case.state;
    let mut out = Vec::new();
    if let Some(p) = party {
        let allowed = |k: K| match (k, p, st) {
            (K::Accept, Party::Responder, RequestState::Sent) => true,
            (K::Forward, Party::Responder, RequestState::Sent | RequestState::Accepted) => true,
            (K::ProposeDeadline, Party::Responder, RequestState::Accepted) => true,
            (
                K::AcceptDeadline | K::RefuseDeadline,
                Party::Requester,
                RequestState::DeadlineProposed { .. },
            ) => true,
            (
                K::Answer,
                Party::Responder,
                RequestState::Accepted | RequestState::DeadlineProposed { .. },
            ) => true,
            (K::RequestInfo, Party::Responder, RequestState::Accepted)
            | (K::RequestInfo, Party::Requester, RequestState::Answered) => true,
            (K::ProvideInfo, p, RequestState::InfoRequested { by }) => p != *by,
            (K::Close, Party::Requester, RequestState::Answered)
            | (
                K::Close,
                Party::Requester,
                RequestState::InfoRequested {
                    by: Party::Requester,
                },
            ) => true,
            (K::Withdraw, Party::Requester, _) => true,
            (K::Refer, _, s) => !matches!(s, RequestState::Referred { .. }),
            _ => false,
        };
        out.extend(K::ALL.into_iter().filter(|k| allowed(*k)));
    }
    if let RequestState::Referred { coordinator, .. } = st
        && actor.coordinator
        && actor.country == *coordinator
    {
        out.extend([K::Reassign, K::Resolve]);
    }
    out
}

/// Runs one transition whatever the case's existence: `create` when there is no case
/// yet, [`apply`] otherwise (after checking that `case` is the case `id`).
pub fn step(
    case: Option<&RequestCase>,
    id: CaseId,
    actor: &Actor,
    t: &Transition,
    at: Timestamp,
) -> Result<RequestCase, TransitionError> {
    match case {
        None => create(id, actor, t, at),
        Some(c) if c.id != id => Err(TransitionError::WrongCase),
        Some(c) => apply(c, actor, t, at),
    }
}

/// Like [`step`], for a transition as received in an envelope body: checks its version.
pub fn step_body(
    case: Option<&RequestCase>,
    id: CaseId,
    actor: &Actor,
    body: &TransitionBody,
    at: Timestamp,
) -> Result<RequestCase, TransitionError> {
    if body.v != TRANSITION_VERSION {
        return Err(TransitionError::UnsupportedVersion(body.v));
    }
    step(case, id, actor, &body.transition, at)
}
