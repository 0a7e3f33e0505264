//! Decoding of stored values into domain types.
//!
//! Rows are decoded by hand through the `Any` driver, which only carries
//! integers and text portably; every conversion that can fail on a value a
//! human or a newer build may have written maps to [`StoreError::Corrupt`]
//! naming the column, instead of a panic or a driver error.

use crate::{Permissions, Result, SessionGuid, SessionState, StoreError};
use lifeline_protocol::hex;
use sqlx::Row;
use sqlx::any::AnyRow;

/// Reads a column, naming it in the error.
pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(column).map_err(StoreError::from)
}

/// A GUID stored in its canonical text form.
pub(crate) fn guid(column: &str, text: &str) -> Result<SessionGuid> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} holds {text:?}, not a session GUID")))
}

/// A session state stored by its name.
pub(crate) fn session_state(column: &str, text: &str) -> Result<SessionState> {
    SessionState::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("{column} holds unknown state {text:?}")))
}

/// A 32-byte value stored as hex.
pub(crate) fn hash32(column: &str, text: &str) -> Result<[u8; 32]> {
    hex::decode_array(text).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "{column} is not 64 hex digits ({} chars)",
            text.len()
        ))
    })
}

/// Permission bits; bits this build does not know are dropped (as
/// [`Permissions::from_bits`] does everywhere), but a value that does not
/// even fit 32 bits is not something we wrote.
pub(crate) fn permissions(column: &str, bits: i64) -> Result<Permissions> {
    u32::try_from(bits)
        .map(Permissions::from_bits)
        .map_err(|_| StoreError::Corrupt(format!("{column} holds {bits}, not permission bits")))
}

/// A boolean stored as 0/1 (portable across both dialects through `Any`).
pub(crate) fn flag(column: &str, value: i64) -> Result<bool> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(StoreError::Corrupt(format!(
            "{column} holds {value}, not 0 or 1"
        ))),
    }
}

/// A byte count for an additive BIGINT column. Saturates rather than fails:
/// no relay moves 2^63 bytes, and a counter must never abort a session.
pub(crate) fn byte_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_values_are_named() {
        assert!(
            matches!(guid("sessions.guid", "nope"), Err(StoreError::Corrupt(m)) if m.contains("sessions.guid"))
        );
        assert!(matches!(
            hash32("sessions.console_pin", "abcd"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            permissions("groups.permissions", -1),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            flag("sessions.downloaded", 2),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(
            permissions("p", i64::from(u32::MAX)).ok(),
            Some(Permissions::ALL.union(Permissions::SINGLE_PROMPT))
        );
        assert_eq!(hash32("h", &hex::encode(&[7; 32])).ok(), Some([7; 32]));
        assert_eq!(byte_count(u64::MAX), i64::MAX);
    }
}
