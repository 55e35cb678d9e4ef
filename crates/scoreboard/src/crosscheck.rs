//! Both sides of a request report its facts; the Commission node compares them.
//!
//! The facts compared are those with the signed creation times of the steps' envelopes,
//! which both nodes hold (one signed it, the other received it and signed a receipt for it),
//! so two honest reports of a case are identical. (A member also reports the times it
//! defends, its receipt time for a step received late: `protocol/vectors/README.md`, "Time of
//! a step"; the figures use those.) A difference means one side reported
//! something the other side's signed messages contradict: the case is **flagged**, naming
//! the fields. The published figures then use the **requester's** report: the indicators
//! grade the responder, every time in them (acceptance, answer) comes from the responder's
//! own signed envelopes that the requester holds, and the ratings are the requester's; a
//! responder cannot improve its figures by reporting better times than the requester's
//! copies of its envelopes show.
use crate::Fact;
use serde::{Deserialize, Serialize};

/// Which side of a request a report comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The requesting country's node.
    Requester,
    /// The responding country's node.
    Responder,
}

/// The fields in which two reports of the same case differ.
pub fn differences(a: &Fact, b: &Fact) -> Vec<&'static str> {
    let mut d = Vec::new();
    let mut check = |name: &'static str, same: bool| {
        if !same {
            d.push(name);
        }
    };
    check("case", a.case == b.case);
    check("area", a.area == b.area);
    check("requester", a.requester == b.requester);
    check("responder", a.responder == b.responder);
    check("sent_at", a.sent_at == b.sent_at);
    check("accepted_at", a.accepted_at == b.accepted_at);
    check("withdrawn_at", a.withdrawn_at == b.withdrawn_at);
    check("answered_at", a.answered_at == b.answered_at);
    check("deadline", a.deadline == b.deadline);
    check("timeliness", a.timeliness == b.timeliness);
    check("efforts", a.efforts == b.efforts);
    d
}

/// A case's reports and what the cross-check concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    /// The fact the figures use.
    pub fact: Fact,
    /// The fields in which the two sides disagree (empty: they agree, or only one side
    /// has reported so far).
    pub disagreements: Vec<String>,
    /// Whether both sides have reported.
    pub both_reported: bool,
}

/// Cross-checks a case's reports (either may be missing while the other is in flight).
pub fn check(requester: Option<&Fact>, responder: Option<&Fact>) -> Option<Checked> {
    match (requester, responder) {
        (None, None) => None,
        (Some(f), None) | (None, Some(f)) => Some(Checked {
            fact: f.clone(),
            disagreements: Vec::new(),
            both_reported: false,
        }),
        (Some(r), Some(s)) => Some(Checked {
            fact: r.clone(),
            disagreements: differences(r, s).into_iter().map(str::to_owned).collect(),
            both_reported: true,
        }),
    }
}
