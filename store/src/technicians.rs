//! Technicians, their groups, login history and lockout.
//!
//! E-mail addresses are the login name. They are stored trimmed and
//! lower-cased, and every lookup normalises the same way in Rust, so the
//! comparison does not depend on each database's idea of case folding.

use crate::error::conflict_on_unique;
use crate::passwords::PasswordPolicy;
use crate::rows::{self, get};
use crate::two_factor::TwoFactor;
use crate::{Permissions, Result, SessionGuid, SessionState, Store, StoreError};
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
    /// The group's id (whose channels' queue the technician sees).
    pub group_id: i64,
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
    /// Since when the account is disabled (`gateway admin technician
    /// disable`): no login, no token works. `None` while enabled.
    pub disabled_at_ms: Option<i64>,
    /// The networks (comma-separated CIDRs) the technician's group may log
    /// in and connect from; `None`: any.
    pub networks: Option<String>,
    /// Their second factor: whether one is required, and where enrollment
    /// stands.
    pub two_factor: TwoFactor,
    /// Their group's password policy.
    pub password_policy: PasswordPolicy,
    /// When their password was set (by them, or by an administrator).
    pub password_set_at_ms: i64,
    /// How long their sessions' PINs work (their group's; seconds).
    pub pin_secs: Option<i64>,
}

/// The columns every technician query selects, joined with the group.
/// A macro so that `concat!` can build `'static` SQL from it.
macro_rules! technician_columns {
    () => {
        "t.id, t.email, t.name, t.group_id, g.name AS group_name, g.permissions, \
         t.password_hash, t.failed_logins, t.locked_until_ms, t.created_at_ms, \
         t.disabled_at_ms, g.networks, t.totp_secret, t.totp_enrolled_at_ms, \
         t.totp_last_step, t.totp_required, g.totp_required AS group_totp_required, \
         g.password_min_length, g.password_min_strength, g.password_max_age_secs, \
         COALESCE(t.password_set_at_ms, t.created_at_ms) AS password_set_at_ms, \
         g.pin_secs"
    };
}
pub(crate) use technician_columns;

macro_rules! technician_select {
    () => {
        concat!(
            "SELECT ",
            technician_columns!(),
            " FROM technicians t JOIN groups g ON g.id = t.group_id"
        )
    };
}

/// Decodes a row selected with [`technician_select!`].
pub(crate) fn from_row(row: &AnyRow) -> Result<Technician> {
    Ok(Technician {
        id: get(row, "id")?,
        email: get(row, "email")?,
        name: get(row, "name")?,
        group: get(row, "group_name")?,
        group_id: get(row, "group_id")?,
        permissions: rows::permissions("groups.permissions", get(row, "permissions")?)?,
        password_hash: get(row, "password_hash")?,
        failed_logins: get(row, "failed_logins")?,
        locked_until_ms: get(row, "locked_until_ms")?,
        created_at_ms: get(row, "created_at_ms")?,
        disabled_at_ms: get(row, "disabled_at_ms")?,
        networks: get(row, "networks")?,
        two_factor: TwoFactor {
            required_for_account: get::<i64>(row, "totp_required")? != 0,
            required_by_group: get::<i64>(row, "group_totp_required")? != 0,
            secret: get(row, "totp_secret")?,
            enrolled_at_ms: get(row, "totp_enrolled_at_ms")?,
            last_step: get(row, "totp_last_step")?,
        },
        password_policy: PasswordPolicy {
            min_length: get(row, "password_min_length")?,
            min_strength: get(row, "password_min_strength")?,
            max_age_secs: get(row, "password_max_age_secs")?,
        },
        password_set_at_ms: get(row, "password_set_at_ms")?,
        pin_secs: get(row, "pin_secs")?,
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
            .execute(self.writes())
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
        insert_attempt(self.writes(), email, source, false, now_ms).await
    }

    /// Trims the login history: deletes attempts before `before_ms`, then
    /// all but the newest `keep` (so a flood within the retention period
    /// cannot grow the table without bound either). Returns how many rows
    /// went.
    pub async fn purge_login_attempts(&self, before_ms: i64, keep: i64) -> Result<u64> {
        let old = sqlx::query("DELETE FROM login_attempts WHERE at_ms < $1")
            .bind(before_ms)
            .execute(self.writes())
            .await?
            .rows_affected();
        let over = sqlx::query(
            "DELETE FROM login_attempts WHERE id <= \
             (SELECT id FROM login_attempts ORDER BY id DESC LIMIT 1 OFFSET $1)",
        )
        .bind(keep.max(0))
        .execute(self.writes())
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

/// A group of technicians: what their sessions may do, and who is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// What sessions created by its technicians may do.
    pub permissions: Permissions,
    /// Its technicians' e-mail addresses, in order.
    pub technicians: Vec<String>,
    /// Logins unused this long end (seconds); `None`: only their lifetime.
    pub idle_secs: Option<i64>,
    /// The networks its technicians may use (CIDRs); `None`: any.
    pub networks: Option<String>,
    /// Its technicians log in with a second factor.
    pub totp_required: bool,
    /// How long its sessions' PINs work (seconds); `None`: the default.
    pub pin_secs: Option<i64>,
    /// What it asks of its technicians' passwords.
    pub password_policy: PasswordPolicy,
}

/// What [`Store::remove_group`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRemoval {
    /// The group is gone.
    Removed,
    /// Nothing changed: these technicians are in it.
    NotEmpty(Vec<String>),
}

/// What [`Store::remove_technician`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// The technician is gone, with their tokens and their session rows
    /// (the audit trail keeps every session's records, and their e-mail
    /// as text).
    Removed {
        /// Their sessions that were still open (not yet connected to an
        /// end user) and were ended first, with the reason given.
        ended: Vec<SessionGuid>,
        /// How many session rows of theirs were deleted (the ones just
        /// ended included).
        sessions_deleted: u64,
        /// How many logins (tokens) of theirs were ended.
        tokens_revoked: u64,
    },
    /// Nothing changed: an end user is connected to these sessions of
    /// theirs, or waiting or reconnecting in them (`waiting`, `paired`,
    /// `direct`).
    Connected(Vec<(SessionGuid, SessionState)>),
    /// Nothing changed: these sessions of theirs ended less than the
    /// settling time ago (with when), and an applet still waiting in one
    /// may not have been told yet — it learns it from the session's row,
    /// which removing would delete.
    RecentlyEnded(Vec<(SessionGuid, i64)>),
}

/// A group's setting in seconds (the column is chosen from these, never
/// from input).
#[derive(Debug, Clone, Copy)]
enum GroupSeconds {
    Idle,
    Pin,
}

/// A group's row: id, name, permissions, idle seconds, networks, 2FA
/// required, password policy (least length, least strength, greatest
/// age).
type GroupRow = (
    i64,
    String,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Decodes group rows and `(group, email)` rows into groups.
fn groups_from(groups: Vec<GroupRow>, members: Vec<(i64, String)>) -> Result<Vec<Group>> {
    groups
        .into_iter()
        .map(
            |(
                id,
                name,
                bits,
                idle_secs,
                networks,
                totp,
                min_len,
                min_strength,
                max_age,
                pin_secs,
            )| {
                Ok(Group {
                    idle_secs,
                    pin_secs,
                    networks,
                    totp_required: totp != 0,
                    password_policy: PasswordPolicy {
                        min_length: min_len,
                        min_strength,
                        max_age_secs: max_age,
                    },
                    name,
                    permissions: rows::permissions("groups.permissions", bits)?,
                    technicians: members
                        .iter()
                        .filter(|(g, _)| *g == id)
                        .map(|(_, e)| e.clone())
                        .collect(),
                })
            },
        )
        .collect()
}

impl Store {
    /// Every group with its technicians, ordered by name (`gateway admin
    /// group list`).
    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        let groups: Vec<GroupRow> = sqlx::query_as(
            "SELECT id, name, permissions, idle_secs, networks, totp_required, \
             password_min_length, password_min_strength, password_max_age_secs, pin_secs FROM groups ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        let members: Vec<(i64, String)> =
            sqlx::query_as("SELECT group_id, email FROM technicians ORDER BY email")
                .fetch_all(self.pool())
                .await?;
        groups_from(groups, members)
    }

    /// One group by name, with its technicians.
    pub async fn group(&self, name: &str) -> Result<Option<Group>> {
        let groups: Vec<GroupRow> = sqlx::query_as(
            "SELECT id, name, permissions, idle_secs, networks, totp_required, \
             password_min_length, password_min_strength, password_max_age_secs, pin_secs FROM groups WHERE name = $1",
        )
        .bind(name.trim())
        .fetch_all(self.pool())
        .await?;
        let members: Vec<(i64, String)> = sqlx::query_as(
            "SELECT t.group_id, t.email FROM technicians t JOIN groups g ON g.id = t.group_id \
             WHERE g.name = $1 ORDER BY t.email",
        )
        .bind(name.trim())
        .fetch_all(self.pool())
        .await?;
        Ok(groups_from(groups, members)?.pop())
    }

    /// Sets how long a technician of `group` may leave a login unused
    /// before it ends (`None`: only its lifetime ends it). Returns what it
    /// was.
    pub async fn set_group_idle(&self, group: &str, idle_secs: Option<i64>) -> Result<Option<i64>> {
        self.set_group_seconds(group, GroupSeconds::Idle, idle_secs)
            .await
    }

    /// Sets how long the PINs of `group`'s sessions work (`None`: the
    /// gateway's default). Returns what it was.
    pub async fn set_group_pin_secs(&self, group: &str, secs: Option<i64>) -> Result<Option<i64>> {
        self.set_group_seconds(group, GroupSeconds::Pin, secs).await
    }

    async fn set_group_seconds(
        &self,
        group: &str,
        which: GroupSeconds,
        secs: Option<i64>,
    ) -> Result<Option<i64>> {
        let group = group.trim();
        let column = match which {
            GroupSeconds::Idle => "idle_secs",
            GroupSeconds::Pin => "pin_secs",
        };
        let mut tx = self.begin_write().await?;
        let before: Option<(Option<i64>,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {column} FROM groups WHERE name = $1"
        )))
        .bind(group)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((before,)) = before else {
            return Err(StoreError::NotFound(format!(
                "there is no group named {group:?}"
            )));
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE groups SET {column} = $2 WHERE name = $1"
        )))
        .bind(group)
        .bind(secs)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(before)
    }

    /// Sets the networks `group`'s technicians may log in and connect
    /// from (comma-separated CIDRs; `None`: any). Returns what it was.
    pub async fn set_group_networks(
        &self,
        group: &str,
        networks: Option<&str>,
    ) -> Result<Option<String>> {
        let group = group.trim();
        let before: Option<(Option<String>,)> =
            sqlx::query_as("SELECT networks FROM groups WHERE name = $1")
                .bind(group)
                .fetch_optional(self.pool())
                .await?;
        let Some((before,)) = before else {
            return Err(StoreError::NotFound(format!(
                "there is no group named {group:?}"
            )));
        };
        sqlx::query("UPDATE groups SET networks = $2 WHERE name = $1")
            .bind(group)
            .bind(networks)
            .execute(self.writes())
            .await?;
        Ok(before)
    }

    /// Adds an empty group. [`StoreError::Conflict`] if one of that name
    /// exists.
    pub async fn add_group(&self, name: &str, p: Permissions) -> Result<Group> {
        let name = name.trim();
        sqlx::query("INSERT INTO groups (name, permissions) VALUES ($1, $2)")
            .bind(name)
            .bind(i64::from(p.bits()))
            .execute(self.writes())
            .await
            .map_err(|e| {
                conflict_on_unique(e, || format!("there is already a group named {name:?}"))
            })?;
        Ok(Group {
            name: name.to_owned(),
            permissions: p,
            technicians: Vec::new(),
            idle_secs: None,
            pin_secs: None,
            networks: None,
            totp_required: false,
            password_policy: PasswordPolicy::default(),
        })
    }

    /// Removes a group that has no technicians; [`GroupRemoval::NotEmpty`]
    /// (nothing changed) otherwise. [`StoreError::NotFound`] if there is no
    /// such group. (Sessions keep the permissions they were created with,
    /// not a reference to the group.)
    pub async fn remove_group(&self, name: &str) -> Result<GroupRemoval> {
        let name = name.trim();
        let mut tx = self.begin_write().await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else {
            return Err(StoreError::NotFound(format!(
                "there is no group named {name:?}"
            )));
        };
        let members: Vec<String> =
            sqlx::query_scalar("SELECT email FROM technicians WHERE group_id = $1 ORDER BY email")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        if !members.is_empty() {
            return Ok(GroupRemoval::NotEmpty(members));
        }
        let channels: Vec<String> =
            sqlx::query_scalar("SELECT name FROM channels WHERE group_id = $1 ORDER BY name")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        if !channels.is_empty() {
            return Err(StoreError::Conflict(format!(
                "channel(s) {} put end users into group {name:?}'s queue: remove them first",
                channels.join(", ")
            )));
        }
        // Its queue's sessions outlive it (they are history, or were
        // picked by a technician now in another group).
        sqlx::query("UPDATE sessions SET queue_group_id = NULL WHERE queue_group_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // A technician moved into it meanwhile (PostgreSQL) makes this fail
        // on the foreign key: nothing is removed under anyone's feet.
        sqlx::query("DELETE FROM groups WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(GroupRemoval::Removed)
    }

    /// Moves a technician to another (existing) group: sessions they create
    /// from now on get its permissions. [`StoreError::NotFound`] if the
    /// technician or the group does not exist.
    pub async fn move_technician(&self, technician_id: i64, group: &str) -> Result<Technician> {
        let group = group.trim();
        let mut tx = self.begin_write().await?;
        let group_id: Option<i64> = sqlx::query_scalar("SELECT id FROM groups WHERE name = $1")
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(group_id) = group_id else {
            return Err(StoreError::NotFound(format!(
                "there is no group named {group:?}"
            )));
        };
        let row = sqlx::query("UPDATE technicians SET group_id = $2 WHERE id = $1 RETURNING id")
            .bind(technician_id)
            .bind(group_id)
            .fetch_optional(&mut *tx)
            .await?;
        if row.is_none() {
            return Err(StoreError::NotFound(format!(
                "there is no technician with id {technician_id}"
            )));
        }
        let row = sqlx::query(concat!(technician_select!(), " WHERE t.id = $1"))
            .bind(technician_id)
            .fetch_one(&mut *tx)
            .await?;
        let technician = from_row(&row)?;
        tx.commit().await?;
        Ok(technician)
    }

    /// Disables a technician from `now_ms` (kept if already disabled):
    /// logins are refused and every token of theirs is deleted in the same
    /// transaction. Returns how many tokens there were.
    /// [`StoreError::NotFound`] if there is no such technician.
    pub async fn disable_technician(&self, technician_id: i64, now_ms: i64) -> Result<u64> {
        self.set_disabled(technician_id, Some(now_ms)).await
    }

    /// Enables a disabled technician: they may log in again. Tokens are
    /// deleted here too: one issued by a login that raced the disabling
    /// must not come back to life. Returns how many there were.
    pub async fn enable_technician(&self, technician_id: i64) -> Result<u64> {
        self.set_disabled(technician_id, None).await
    }

    async fn set_disabled(&self, technician_id: i64, since: Option<i64>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let done = match since {
            Some(at) => sqlx::query(
                "UPDATE technicians SET disabled_at_ms = COALESCE(disabled_at_ms, $2) WHERE id = $1",
            )
            .bind(technician_id)
            .bind(at),
            None => sqlx::query("UPDATE technicians SET disabled_at_ms = NULL WHERE id = $1")
                .bind(technician_id),
        }
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!(
                "there is no technician with id {technician_id}"
            )));
        }
        let tokens = sqlx::query("DELETE FROM tokens WHERE technician_id = $1")
            .bind(technician_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(tokens)
    }

    /// Sets a new password hash (an administrator's reset, or the
    /// technician's own change after a full login) with its time, clears
    /// the failure count and any lockout, and deletes every token of the
    /// technician, in one transaction. Returns how many tokens there were. [`StoreError::NotFound`] if
    /// there is no such technician.
    pub async fn reset_password(
        &self,
        technician_id: i64,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE technicians SET password_hash = $2, failed_logins = 0, \
             locked_until_ms = NULL, password_set_at_ms = $3 WHERE id = $1",
        )
        .bind(technician_id)
        .bind(password_hash)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(StoreError::NotFound(format!(
                "there is no technician with id {technician_id}"
            )));
        }
        let tokens = sqlx::query("DELETE FROM tokens WHERE technician_id = $1")
            .bind(technician_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(tokens)
    }

    /// Removes a technician, in one transaction: their sessions that are
    /// still open are ended (`reason`, at `now_ms`), then every session row
    /// of theirs, their tokens and the technician are deleted. The audit
    /// trail is not touched: it names people by e-mail, as text.
    ///
    /// Nothing changes, and the answer says why, while an end user is
    /// connected to one of their sessions, waiting in it or reconnecting
    /// to it ([`Removal::Connected`]: ending it in the store would not cut
    /// a live session, whose traffic may not even pass the gateway), or
    /// while one of their sessions ended less than `settle_ms` ago
    /// ([`Removal::RecentlyEnded`]: an applet waiting in it learns of the
    /// end from its row, on SQLite at the node's next check of its
    /// waiting applets). [`StoreError::NotFound`] if there is no such technician.
    pub async fn remove_technician(
        &self,
        technician_id: i64,
        reason: &str,
        now_ms: i64,
        settle_ms: i64,
    ) -> Result<Removal> {
        let mut tx = self.begin_write().await?;
        // Takes the technician's row lock on PostgreSQL first, as
        // `create_session` does: no session of theirs can be created while
        // this runs (SQLite's IMMEDIATE transaction serialises anyway).
        let exists =
            sqlx::query("UPDATE technicians SET failed_logins = failed_logins WHERE id = $1")
                .bind(technician_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
        if !exists {
            return Err(StoreError::NotFound(format!(
                "there is no technician with id {technician_id}"
            )));
        }
        let connected: Vec<(String, String)> = sqlx::query_as(
            "SELECT guid, state FROM sessions WHERE technician_id = $1 \
             AND state IN ('waiting', 'paired', 'direct') ORDER BY created_at_ms",
        )
        .bind(technician_id)
        .fetch_all(&mut *tx)
        .await?;
        if !connected.is_empty() {
            return connected
                .iter()
                .map(|(g, s)| {
                    Ok((
                        rows::guid("sessions.guid", g)?,
                        rows::session_state("sessions.state", s)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()
                .map(Removal::Connected);
        }
        let recent: Vec<(String, i64)> = sqlx::query_as(
            "SELECT guid, ended_at_ms FROM sessions WHERE technician_id = $1 \
             AND state = 'ended' AND ended_at_ms > $2 ORDER BY ended_at_ms",
        )
        .bind(technician_id)
        .bind(now_ms.saturating_sub(settle_ms))
        .fetch_all(&mut *tx)
        .await?;
        if !recent.is_empty() {
            return recent
                .iter()
                .map(|(g, at)| Ok((rows::guid("sessions.guid", g)?, *at)))
                .collect::<Result<Vec<_>>>()
                .map(Removal::RecentlyEnded);
        }
        // What is left open is `created` (no applet connected). Ended like
        // any session — on PostgreSQL the trigger tells every node, should
        // an applet have arrived meanwhile.
        let ended: Vec<String> = sqlx::query_scalar(
            "UPDATE sessions SET state = 'ended', ended_at_ms = $2, ended_reason = $3, \
             applet_secret = NULL, waiting_since_ms = NULL, waiting_from = NULL, \
             waiting_node = NULL, waiting_node_addr = NULL \
             WHERE technician_id = $1 AND state <> 'ended' RETURNING guid",
        )
        .bind(technician_id)
        .bind(now_ms)
        .bind(reason)
        .fetch_all(&mut *tx)
        .await?;
        let sessions_deleted = sqlx::query("DELETE FROM sessions WHERE technician_id = $1")
            .bind(technician_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Offers made to them lapse; the sessions stay with whoever holds them.
        sqlx::query(
            "UPDATE sessions SET transfer_to = NULL, transfer_pin = NULL WHERE transfer_to = $1",
        )
        .bind(technician_id)
        .execute(&mut *tx)
        .await?;
        let tokens_revoked = sqlx::query("DELETE FROM tokens WHERE technician_id = $1")
            .bind(technician_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM recovery_codes WHERE technician_id = $1")
            .bind(technician_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM technicians WHERE id = $1")
            .bind(technician_id)
            .execute(&mut *tx)
            .await?;
        let ended = ended
            .iter()
            .map(|g| rows::guid("sessions.guid", g))
            .collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(Removal::Removed {
            ended,
            sessions_deleted,
            tokens_revoked,
        })
    }

    /// Records, in the login history, a login refused although the
    /// password was right (a disabled account): the account's failure
    /// count is not touched.
    pub async fn record_login_refused(&self, email: &str, source: &str, now_ms: i64) -> Result<()> {
        insert_attempt(self.writes(), email, source, false, now_ms).await
    }
}
