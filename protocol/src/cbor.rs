//! CBOR helpers (ciborium) with size limits and serde adapters for fixed-size byte strings.
use crate::error::{ProtocolError, RejectCode};
use serde::{Serialize, de::DeserializeOwned};

/// Encodes a value to CBOR bytes.
pub(crate) fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, ProtocolError> {
    // Receipts and headers fit; an envelope's payload grows from here in three steps
    // instead of eight.
    let mut out = Vec::with_capacity(256);
    ciborium::into_writer(value, &mut out).map_err(|e| ProtocolError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes remote CBOR bytes, refusing input over `max` bytes before decoding and any
/// trailing bytes after the value.
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, RejectCode> {
    if bytes.len() > max {
        return Err(RejectCode::Oversized);
    }
    let mut reader = bytes;
    let value = ciborium::de::from_reader_with_recursion_limit(&mut reader, 16)
        .map_err(|_| RejectCode::Malformed)?;
    if !reader.is_empty() {
        return Err(RejectCode::Malformed);
    }
    Ok(value)
}

/// Like [`from_slice`], and the bytes must be exactly the encoding of the decoded value
/// ([`to_vec`]): the one deterministic form (map keys in the documented order, shortest
/// integer and length forms, definite lengths), no unknown or duplicate keys. Anything else
/// is `malformed`, so two receivers cannot read the same signed bytes differently.
pub(crate) fn from_slice_canonical<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    max: usize,
) -> Result<T, RejectCode> {
    let value: T = from_slice(bytes, max)?;
    // Encoded again into a writer that compares as it goes: no copy, and the first
    // differing byte ends it.
    let mut same = Same { rest: bytes };
    match ciborium::into_writer(&value, &mut same) {
        Ok(()) if same.rest.is_empty() => Ok(value),
        _ => Err(RejectCode::Malformed),
    }
}

/// A writer that accepts only the bytes `rest` begins with, and consumes them.
struct Same<'a> {
    rest: &'a [u8],
}

impl std::io::Write for Same<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self.rest.strip_prefix(data) {
            Some(rest) => {
                self.rest = rest;
                Ok(data.len())
            }
            None => Err(std::io::ErrorKind::InvalidData.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serde adapter: `[u8; N]` as a CBOR byte string.
pub(crate) mod fixed {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    #[allow(unused_imports)]
    use serde_bytes as _;

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let buf = serde_bytes::ByteBuf::deserialize(d)?;
        let len = buf.len();
        buf.into_vec()
            .try_into()
            .map_err(|_| D::Error::invalid_length(len, &"a byte string of the fixed length"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value;

    /// `n` nested one-element arrays (`81`), then maps (`a1 00`), around the integer 0.
    fn nested(arrays: usize, maps: usize) -> Vec<u8> {
        let mut b = vec![0x81; arrays];
        for _ in 0..maps {
            b.extend([0xa1, 0x00]);
        }
        b.push(0x00);
        b
    }

    #[test]
    fn depth_counts_every_array_and_map() {
        assert!(from_slice::<Value>(&nested(16, 0), 1000).is_ok());
        assert!(from_slice::<Value>(&nested(8, 8), 1000).is_ok());
        assert_eq!(
            from_slice::<Value>(&nested(17, 0), 1000).err(),
            Some(RejectCode::Malformed)
        );
        assert_eq!(
            from_slice::<Value>(&nested(9, 8), 1000).err(),
            Some(RejectCode::Malformed)
        );
        assert_eq!(
            from_slice::<Value>(&nested(1_000_000, 0), 2_000_000).err(),
            Some(RejectCode::Malformed)
        );
    }

    #[test]
    fn canonical_means_the_schema_order_not_sorted_keys() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct S {
            bb: u8,
            a: u8,
        }
        // {"bb": 1, "a": 2}: the declared order, although "a" sorts first.
        let ok = [0xa2, 0x62, b'b', b'b', 0x01, 0x61, b'a', 0x02];
        assert_eq!(from_slice_canonical::<S>(&ok, 100), Ok(S { bb: 1, a: 2 }));
        let sorted = [0xa2, 0x61, b'a', 0x02, 0x62, b'b', b'b', 0x01];
        assert!(from_slice::<S>(&sorted, 100).is_ok());
        assert_eq!(
            from_slice_canonical::<S>(&sorted, 100),
            Err(RejectCode::Malformed)
        );
        let long = [0xa2, 0x62, b'b', b'b', 0x18, 0x01, 0x61, b'a', 0x02];
        assert_eq!(
            from_slice_canonical::<S>(&long, 100),
            Err(RejectCode::Malformed)
        );
    }
}
