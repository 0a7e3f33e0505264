//! Technicians, their groups, login history and lockout.
//!
//! E-mail addresses are the login name. They are stored trimmed and
//! lower-cased, and every lookup normalises the same way in Rust, so the
//! comparison does not depend on each database's idea of case folding.

use crate::error::conflict_on_unique;
use crate::rows::{self, get};
use crate::{Permissions, Result, Store, StoreError};
use sqlx::Any;
use sqlx::any::AnyRow;

/// What the operator supplies to add a technician.
#[derive(Debug, Clone)]
pub struct NewTechnician {
    /// Login e-mail (normalised to trimmed lower case).
    pub email: String,
    /// Display name, shown to end users in the applet.
    pub name: String,
    /// A password hash in PHC string form; the store never sees passwords.
    pub password_hash: String,
    /// Group name; created with all permissions if it does not exist.
    pub group: String,
}

/// A technician as stored, with the group's permissions resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Technician {
    /// Stable numeric id.
    pub id: i64,
    /// Normalised login e-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Group name.
    pub group: String,
    /// What sessions created by this technician may do.
    pub permissions: Permissions,
    /// PHC password hash.
    pub password_hash: String,
    /// Consecutive failed logins since the last success or lock.
    pub failed_logins: i64,
    /// While in the future, logins are refused.
    pub locked_until_ms: Option<i64>,
    /// When the account was added.
    pub created_at_ms: i64,
}

/// The columns every technician query selects, joined with the group.
/// A macro so that `concat!` can build `'static` SQL from it.
macro_rules! technician_select {
    () => {
        "SELECT t.id, t.email, t.name, g.name AS group_name, g.permissions, \
         t.password_hash, t.failed_logins, t.locked_until_ms, t.created_at_ms \
         FROM technicians t JOIN groups g ON g.id = t.group_id"
    };
}
pub(crate) use technician_select;

/// Decodes a row selected with [`technician_select!`].
pub(crate) fn from_row(row: &AnyRow) -> Result<Technician> {
    Ok(Technician {
        id: get(row, "id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        group: get(row, "group_name")?,
        permissions: rows::permissions("groups.permissions", get(row, "permissions")?)?,
        password_hash: get(row, "password_hash")?,
        failed_logins: get(row, "failed_logins")?,
        locked_until_ms: get(row, "locked_until_ms")?,
        created_at_ms: get(row, "created_at_ms")?,
    })
}

/// Longest e-mail address (RFC 5321's path limit less the brackets).
pub const MAX_EMAIL: usize = 254;

/// The stored form of an e-mail address: trimmed, lower case, and never
/// longer than [`MAX_EMAIL`] bytes — a login form is not a way to write
/// megabytes into the login history.
fn normalize_email(email: &str) -> String {
    let e = lifeline_protocol::codec::clamp_str(email.trim(), MAX_EMAIL).to_lowercase();
    // Lower-casing can lengthen a few characters; clamp again.
    lifeline_protocol::codec::clamp_str(&e, MAX_EMAIL).to_owned()
}

/// Appends to the login history.
async fn insert_attempt<'e>(
    exec: impl sqlx::Executor<'e, Database = Any>,
    email: &str,
    source: &str,
    success: bool,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO login_attempts (email, at_ms, success, source) VALUES ($1, $2, $3, $4)",
    )
    .bind(normalize_email(email))
    .bind(now_ms)
    .bind(i64::from(success))
    .bind(lifeline_protocol::codec::clamp_str(source, 64))
    .execute(exec)
    .await?;
    Ok(())
}

impl Store {
    /// Adds a technician, creating the group (with all permissions) if it
    /// does not exist. [`StoreError::Conflict`] if the e-mail is taken.
    pub async fn add_technician(&self, t: NewTechnician, now_ms: i64) -> Result<Technician> {
        let email = normalize_email(&t.email);
        let group = t.group.trim();
        let mut tx = self.begin_write().await?;
        // DO NOTHING rather than a read-then-insert: two admins adding the
        // first members of a new group at once must not collide.
        sqlx::query(
            "INSERT INTO groups (name, permissions) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(group)
        .bind(i64::from(Permissions::ALL.bits()))
        .execute(&mut *tx)
        .await?;
        let group_id: i64 = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
            .bind(group)
            .fetch_one(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO technicians \
             (email, name, group_id, password_hash, failed_logins, locked_until_ms, created_at_ms) \
             VALUES ($1, $2, $3, $4, 0, NULL, $5) RETURNING id",
        )
        .bind(&email)
        .bind(&t.name)
        .bind(group_id)
        .bind(&t.password_hash)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            conflict_on_unique(e, || {
                format!("a technician with e-mail {email} already exists")
            })
        })?;
        let row = sqlx::query(concat!(technician_select!(), " WHERE t.id = $1"))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let technician = from_row(&row)?;
        tx.commit().await?;
        Ok(technician)
    }

    /// Looks a technician up by e-mail, ignoring case and surrounding space.
    pub async fn technician_by_email(&self, email: &str) -> Result<Option<Technician>> {
        sqlx::query(concat!(technician_select!(), " WHERE t.email = $1"))
            .bind(normalize_email(email))
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    /// Looks a technician up by id.
    pub async fn technician_by_id(&self, id: i64) -> Result<Option<Technician>> {
        sqlx::query(concat!(technician_select!(), " WHERE t.id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    /// All technicians, ordered by e-mail.
    pub async fn list_technicians(&self) -> Result<Vec<Technician>> {
        sqlx::query(concat!(technician_select!(), " ORDER BY t.email"))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// Sets what a group's technicians may do in sessions created from now
    /// on. [`StoreError::NotFound`] if there is no such group.
    pub async fn set_group_permissions(&self, group: &str, p: Permissions) -> Result<()> {
        let group = group.trim();
        let done = sqlx::query("UPDATE groups SET permissions = $2 WHERE name = $1")
            .bind(group)
            .bind(i64::from(p.bits()))
            .execute(self.pool())
            .await?
            .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!(
                "there is no group named {group:?}"
            )));
        }
        Ok(())
    }

    /// Records a failed password check. Increments `failed_logins`; when it
    /// reaches `max_failures` sets `locked_until_ms = now_ms + lock_ms` and
    /// resets the counter to 0. Returns the new `locked_until_ms` if this
    /// failure locked the account. Also inserts a login-history row.
    ///
    /// `max_failures == 0` disables locking (the counter still counts).
    pub async fn record_login_failure(
        &self,
        technician_id: i64,
        email: &str,
        source: &str,
        now_ms: i64,
        max_failures: u32,
        lock_ms: i64,
    ) -> Result<Option<i64>> {
        let mut tx = self.begin_write().await?;
        // Increment in SQL, not read-modify-write in Rust, so that parallel
        // guesses against one account all count.
        let failures: i64 = sqlx::query_scalar(
            "UPDATE technicians SET failed_logins = failed_logins + 1 WHERE id = $1 \
             RETURNING failed_logins",
        )
        .bind(technician_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!("there is no technician with id {technician_id}"))
        })?;
        let locked = if max_failures > 0 && failures >= i64::from(max_failures) {
            let until = now_ms.saturating_add(lock_ms);
            sqlx::query(
                "UPDATE technicians SET failed_logins = 0, locked_until_ms = $2 WHERE id = $1",
            )
            .bind(technician_id)
            .bind(until)
            .execute(&mut *tx)
            .await?;
            Some(until)
        } else {
            None
        };
        insert_attempt(&mut *tx, email, source, false, now_ms).await?;
        tx.commit().await?;
        Ok(locked)
    }

    /// Records a successful login: resets the failure counter, lifts any
    /// lock, and inserts a login-history row.
    pub async fn record_login_success(
        &self,
        technician_id: i64,
        email: &str,
        source: &str,
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE technicians SET failed_logins = 0, locked_until_ms = NULL WHERE id = $1",
        )
        .bind(technician_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!(
                "there is no technician with id {technician_id}"
            )));
        }
        insert_attempt(&mut *tx, email, source, true, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a login attempt for an e-mail that belongs to nobody
    /// (history only: there is no account to lock).
    pub async fn record_unknown_login(&self, email: &str, source: &str, now_ms: i64) -> Result<()> {
        insert_attempt(self.pool(), email, source, false, now_ms).await
    }

    /// Trims the login history: deletes attempts before `before_ms`, then
    /// all but the newest `keep` (so a flood within the retention period
    /// cannot grow the table without bound either). Returns how many rows
    /// went.
    pub async fn purge_login_attempts(&self, before_ms: i64, keep: i64) -> Result<u64> {
        let old = sqlx::query("DELETE FROM login_attempts WHERE at_ms < $1")
            .bind(before_ms)
            .execute(self.pool())
            .await?
            .rows_affected();
        let over = sqlx::query(
            "DELETE FROM login_attempts WHERE id <= \
             (SELECT id FROM login_attempts ORDER BY id DESC LIMIT 1 OFFSET $1)",
        )
        .bind(keep.max(0))
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(old + over)
    }

    /// The number of rows in the login history.
    pub async fn login_attempt_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM login_attempts")
            .fetch_one(self.pool())
            .await?)
    }
}
