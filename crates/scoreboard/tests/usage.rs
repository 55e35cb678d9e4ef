//! Usage facts (`imi_scoreboard::usage`): what a valid one is, and the statistics counted
//! from them per country and in total, within the period only.

use imi_scoreboard::Period;
use imi_scoreboard::usage::{Usage, UsageError, UsageFact, UsageKind};

fn fact(kind: UsageKind, sender: &str, to: &[&str], sent_at: &str) -> UsageFact {
    UsageFact {
        v: 1,
        kind,
        id: "0123456789abcdef0123456789abcdef".into(),
        procedure: "SD-P03".into(),
        sender: sender.into(),
        recipients: to.iter().map(|s| s.to_string()).collect(),
        sent_at: sent_at.into(),
        late: false,
    }
}

#[test]
fn a_usage_fact_is_checked_field_by_field() {
    let good = fact(
        UsageKind::Notification,
        "DE",
        &["AT", "EU", "HU"],
        "2021-03-01T10:00:00Z",
    );
    assert_eq!(good.validate(), Ok(1_614_592_800_000));
    type Spoil = fn(&mut UsageFact);
    let cases: Vec<(Spoil, UsageError)> = vec![
        (|f| f.v = 2, UsageError::Version(2)),
        (|f| f.id = "XYZ".into(), UsageError::BadId),
        (|f| f.id = f.id.to_uppercase(), UsageError::BadId),
        (|f| f.procedure = "sd p03".into(), UsageError::BadProcedure),
        (|f| f.sender = "EU".into(), UsageError::BadSender),
        (|f| f.sender = "US".into(), UsageError::BadSender),
        (|f| f.recipients.clear(), UsageError::BadRecipients),
        (
            |f| f.recipients.push("DE".into()),
            UsageError::BadRecipients,
        ),
        (|f| f.recipients.reverse(), UsageError::BadRecipients),
        (
            |f| f.recipients.push("HU".into()),
            UsageError::BadRecipients,
        ),
        (
            |f| f.recipients.push("ZZ".into()),
            UsageError::BadRecipients,
        ),
        (|f| f.sent_at = "yesterday".into(), UsageError::BadTime),
        (|f| f.late = true, UsageError::LateNotAlert),
    ];
    for (spoil, error) in cases {
        let mut f = good.clone();
        spoil(&mut f);
        assert_eq!(f.validate(), Err(error.clone()), "{f:?}");
    }
    // A repository entry may be held by its owner's node alone.
    let alone = fact(
        UsageKind::RepositoryEntry,
        "DE",
        &[],
        "2021-03-01T10:00:00Z",
    );
    assert!(alone.validate().is_ok());
    // No field beyond the documented ones is accepted.
    let mut json = serde_json::to_value(&good).unwrap();
    json["authority"] = "DE-NC".into();
    assert!(serde_json::from_value::<UsageFact>(json).is_err());
}

#[test]
fn usage_counts_sent_received_and_late_within_the_period() {
    let mut late = fact(
        UsageKind::Alert,
        "DE",
        &["AT", "HU"],
        "2021-06-01T00:00:00Z",
    );
    late.late = true;
    let facts = vec![
        fact(
            UsageKind::Notification,
            "DE",
            &["AT", "EU", "HU"],
            "2021-01-01T00:00:00Z",
        ),
        fact(
            UsageKind::Notification,
            "HU",
            &["DE"],
            "2021-12-31T23:59:59Z",
        ),
        late,
        fact(
            UsageKind::Alert,
            "AT",
            &["DE", "HU"],
            "2021-06-02T00:00:00Z",
        ),
        fact(
            UsageKind::RepositoryEntry,
            "DE",
            &["AT"],
            "2021-07-01T00:00:00Z",
        ),
        // Outside 2021: not counted.
        fact(
            UsageKind::Notification,
            "DE",
            &["AT"],
            "2022-01-01T00:00:00Z",
        ),
        fact(
            UsageKind::Notification,
            "DE",
            &["AT"],
            "2020-12-31T23:59:59Z",
        ),
        // Invalid: skipped.
        fact(
            UsageKind::Notification,
            "DE",
            &["DE"],
            "2021-05-01T00:00:00Z",
        ),
    ];
    let u = Usage::of(Period::parse("2021").unwrap(), &facts);
    assert_eq!(
        (u.from.as_str(), u.to.as_str()),
        ("2021-01-01", "2022-01-01")
    );
    assert_eq!(u.totals["notification"], 2);
    assert_eq!(u.totals["alert"], 2);
    assert_eq!(u.totals["repository_entry"], 1);
    let de = &u.countries["DE"];
    assert_eq!((de.notifications.sent, de.notifications.received), (1, 1));
    assert_eq!(
        (de.alerts.sent, de.alerts.received, de.alerts_late),
        (1, 1, 1)
    );
    assert_eq!(de.repository_entries.sent, 1);
    let at = &u.countries["AT"];
    assert_eq!(
        (at.notifications.received, at.alerts.sent, at.alerts_late),
        (1, 1, 0)
    );
    assert_eq!(at.repository_entries.received, 1);
    assert_eq!(u.countries["EU"].notifications.received, 1);
    assert_eq!(u.countries["HU"].alerts.received, 2);
    assert_eq!(u.countries.len(), 31, "the 30 EEA countries and EU, always");
}
