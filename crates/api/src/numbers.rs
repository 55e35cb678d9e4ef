//! Integers in JSON bodies.
//!
//! JSON has one number type: `2.0` and `2` are the same number, and JSON Schema's `integer`
//! accepts both. The API's integer fields (ratings, number answers, the operator's
//! diagnostic counts) therefore take a number with a zero fraction as that integer, and
//! refuse any other fraction (`2.5`).
use serde::{Deserialize, Deserializer};
use serde_json::Number;

/// The integer a JSON number denotes, if it has one (`2`, `-3`, `2.0`, `1e2`); `None` for a
/// fraction or a value outside `i64`.
pub fn integer(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    // 2^63 as f64 is exact; anything at or above it does not fit.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    n.as_f64()
        .filter(|f| f.fract() == 0.0 && *f >= -LIMIT && *f < LIMIT)
        .map(|f| f as i64)
}

/// The integer of a JSON value that is a number with one (see [`integer`]).
pub fn integer_value(v: &serde_json::Value) -> Option<i64> {
    v.as_number().and_then(integer)
}

/// `#[serde(deserialize_with = "...")]` for an integer field of type `T`: a JSON number
/// with a zero fraction and within `T`'s range; anything else is a type error.
pub fn deserialize<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let n = Number::deserialize(d)?;
    integer(&n)
        .and_then(|i| T::try_from(i).ok())
        .ok_or_else(|| {
            serde::de::Error::invalid_value(
                serde::de::Unexpected::Other(&format!("the number {n}")),
                &"an integer in range",
            )
        })
}

/// [`deserialize`] for an optional integer field (with `#[serde(default)]`): `null` is
/// absent.
pub fn deserialize_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    match Option::<Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => deserialize(n).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn integral_numbers_are_integers() {
        assert_eq!(integer(&n("2")), Some(2));
        assert_eq!(integer(&n("2.0")), Some(2));
        assert_eq!(integer(&n("-3.0")), Some(-3));
        assert_eq!(integer(&n("1e2")), Some(100));
        assert_eq!(integer(&n("2.5")), None);
        assert_eq!(integer(&n("1e30")), None);
        assert_eq!(integer(&n("9223372036854775807")), Some(i64::MAX));
    }

    #[derive(Debug, serde::Deserialize)]
    struct Counts {
        #[serde(deserialize_with = "deserialize")]
        count: u32,
    }

    #[test]
    fn deserializes_in_range_only() {
        let c: Counts = serde_json::from_str(r#"{"count": 3.0}"#).unwrap();
        assert_eq!(c.count, 3);
        assert!(serde_json::from_str::<Counts>(r#"{"count": 3.5}"#).is_err());
        assert!(serde_json::from_str::<Counts>(r#"{"count": -1}"#).is_err());
        assert!(serde_json::from_str::<Counts>(r#"{"count": "3"}"#).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    struct Optional {
        #[serde(default, deserialize_with = "deserialize_opt")]
        n: Option<u32>,
    }

    #[test]
    fn optional_integers() {
        let o = |s: &str| serde_json::from_str::<Optional>(s).map(|o| o.n);
        assert_eq!(o(r#"{}"#).unwrap(), None);
        assert_eq!(o(r#"{"n": null}"#).unwrap(), None);
        assert_eq!(o(r#"{"n": 4.0}"#).unwrap(), Some(4));
        assert!(o(r#"{"n": 4.5}"#).is_err());
        assert!(o(r#"{"n": -1}"#).is_err());
    }
}
