//! The store's error type.
//!
//! Callers (the portal, the relay) need to tell "your request clashes with
//! existing data" and "no such thing" apart from "the database is broken", so
//! those get their own variants with a message fit to show a technician.

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one this build understands.
    #[error("{0}")]
    BadUrl(String),
    /// The database driver failed (connection, I/O, SQL).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date, or is newer than this build.
    #[error("database schema: {0}")]
    Migration(String),
    /// There is no store there (`Store::open_existing`): nothing was made.
    #[error("{0}")]
    NoStore(String),
    /// The change clashes with existing data (a unique constraint).
    #[error("{0}")]
    Conflict(String),
    /// The thing the change refers to does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A stored value cannot be decoded: someone edited the database by hand,
    /// or a newer build wrote something this one does not understand.
    #[error("corrupt database row: {0}")]
    Corrupt(String),
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Turns a unique-constraint violation into [`StoreError::Conflict`] with
/// `message`; every other error passes through unchanged.
///
/// The message is built lazily because most calls succeed.
pub(crate) fn conflict_on_unique(err: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(err),
    }
}
