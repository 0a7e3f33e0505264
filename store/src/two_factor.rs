//! Two-factor login: a technician's TOTP secret and enrollment, the last
//! time step a code was accepted for (no replay), recovery codes, and
//! whether a second factor is required of an account or a whole group.
//!
//! The store keeps what the gateway's `totp` module computes with; it
//! never checks a code itself. Every "accept once" rule is a single
//! conditional `UPDATE` or `DELETE`, so two nodes sharing PostgreSQL that
//! receive the same code at the same moment accept it at most once.

use crate::{Result, Store, StoreError};

/// A technician's second factor as stored.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TwoFactor {
    /// Required of this account (`gateway admin technician add
    /// --require-2fa`, `technician require-2fa`).
    pub required_for_account: bool,
    /// Required of everyone in the account's group (`group require-2fa`).
    pub required_by_group: bool,
    /// The TOTP secret (hex): pending while `enrolled_at_ms` is `None`,
    /// confirmed by a first code after.
    pub secret: Option<String>,
    /// When enrollment was confirmed; from then on every login needs a
    /// code, required or not.
    pub enrolled_at_ms: Option<i64>,
    /// The time step of the last code accepted.
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for TwoFactor {
    // The secret never reaches a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoFactor")
            .field("required_for_account", &self.required_for_account)
            .field("required_by_group", &self.required_by_group)
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .field("enrolled_at_ms", &self.enrolled_at_ms)
            .field("last_step", &self.last_step)
            .finish()
    }
}

impl TwoFactor {
    /// Whether a login needs a code (or enrollment first).
    pub fn needed(&self) -> bool {
        self.enrolled_at_ms.is_some() || self.required_for_account || self.required_by_group
    }

    /// Enrolled: logins need a code from the technician's app.
    pub fn enrolled(&self) -> bool {
        self.enrolled_at_ms.is_some()
    }

    /// How an operator reads it in `technician list`.
    pub fn describe(&self) -> &'static str {
        match (self.enrolled(), self.needed()) {
            (true, _) => "enrolled",
            (false, true) => "required",
            (false, false) => "off",
        }
    }
}

fn no_technician(id: i64) -> StoreError {
    StoreError::NotFound(format!("there is no technician with id {id}"))
}

impl Store {
    /// Starts (or restarts) enrollment: `secret_hex` becomes the pending
    /// secret. `false` if the technician has already enrolled (a reset
    /// comes first).
    pub async fn set_pending_totp(&self, technician_id: i64, secret_hex: &str) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE technicians SET totp_secret = $2, totp_last_step = NULL \
             WHERE id = $1 AND totp_enrolled_at_ms IS NULL",
        )
        .bind(technician_id)
        .bind(secret_hex)
        .execute(self.writes())
        .await?
        .rows_affected()
            == 1)
    }

    /// Confirms enrollment with the first code (its `step`) and stores the
    /// recovery codes' hashes, replacing any earlier ones. `false` if the
    /// pending secret is no longer `secret_hex` (a second enrollment
    /// started meanwhile) or enrollment was already confirmed.
    pub async fn confirm_totp(
        &self,
        technician_id: i64,
        secret_hex: &str,
        step: i64,
        recovery_hashes: &[String],
        now_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE technicians SET totp_enrolled_at_ms = $3, totp_last_step = $4 \
             WHERE id = $1 AND totp_secret = $2 AND totp_enrolled_at_ms IS NULL",
        )
        .bind(technician_id)
        .bind(secret_hex)
        .bind(now_ms)
        .bind(step)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM recovery_codes WHERE technician_id = $1")
            .bind(technician_id)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (technician_id, code_hash) VALUES ($1, $2)")
                .bind(technician_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Takes a code's time step: `true` only if it is later than the last
    /// step taken — the same code, or an older one, is refused even when
    /// it arrives at two nodes at once.
    pub async fn take_totp_step(&self, technician_id: i64, step: i64) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE technicians SET totp_last_step = $2 WHERE id = $1 \
             AND totp_enrolled_at_ms IS NOT NULL \
             AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(technician_id)
        .bind(step)
        .execute(self.writes())
        .await?
        .rows_affected()
            == 1)
    }

    /// Uses up a recovery code (by its hash): how many are left, or `None`
    /// if it is not one of the technician's unused codes.
    pub async fn use_recovery_code(&self, technician_id: i64, hash: &str) -> Result<Option<i64>> {
        let mut tx = self.begin_write().await?;
        let used =
            sqlx::query("DELETE FROM recovery_codes WHERE technician_id = $1 AND code_hash = $2")
                .bind(technician_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if used != 1 {
            return Ok(None);
        }
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE technician_id = $1")
                .bind(technician_id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(Some(left))
    }

    /// Forgets a technician's second factor (a lost phone): secret,
    /// enrollment and recovery codes go, and every login of theirs ends.
    /// If a second factor is still required, their next login enrolls
    /// again. Returns how many logins ended.
    pub async fn reset_totp(&self, technician_id: i64) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE technicians SET totp_secret = NULL, totp_enrolled_at_ms = NULL, \
             totp_last_step = NULL WHERE id = $1",
        )
        .bind(technician_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            return Err(no_technician(technician_id));
        }
        sqlx::query("DELETE FROM recovery_codes WHERE technician_id = $1")
            .bind(technician_id)
            .execute(&mut *tx)
            .await?;
        let tokens = sqlx::query("DELETE FROM tokens WHERE technician_id = $1")
            .bind(technician_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(tokens)
    }

    /// Requires a second factor of one account, or stops requiring it (an
    /// enrolled technician keeps using theirs until it is reset).
    pub async fn set_technician_totp_required(
        &self,
        technician_id: i64,
        required: bool,
    ) -> Result<()> {
        let done = sqlx::query("UPDATE technicians SET totp_required = $2 WHERE id = $1")
            .bind(technician_id)
            .bind(i64::from(required))
            .execute(self.writes())
            .await?
            .rows_affected();
        if done == 0 {
            return Err(no_technician(technician_id));
        }
        Ok(())
    }

    /// Requires a second factor of everyone in `group`, or stops requiring
    /// it. Returns what it was.
    pub async fn set_group_totp_required(&self, group: &str, required: bool) -> Result<bool> {
        let group = group.trim();
        let before: Option<i64> =
            sqlx::query_scalar("SELECT totp_required FROM groups WHERE name = $1")
                .bind(group)
                .fetch_optional(self.pool())
                .await?;
        let Some(before) = before else {
            return Err(StoreError::NotFound(format!(
                "there is no group named {group:?}"
            )));
        };
        sqlx::query("UPDATE groups SET totp_required = $2 WHERE name = $1")
            .bind(group)
            .bind(i64::from(required))
            .execute(self.writes())
            .await?;
        Ok(before != 0)
    }

    /// How many unused recovery codes a technician has.
    pub async fn recovery_codes_left(&self, technician_id: i64) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE technician_id = $1")
                .bind(technician_id)
                .fetch_one(self.pool())
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {

    #[tokio::test]
    async fn enrollment_steps_and_recovery_codes_are_each_taken_once() {
        let (store, id) = crate::test_store_with_technician().await;
        let t = store.technician_by_id(id).await.unwrap().unwrap();
        assert!(!t.two_factor.needed());
        store
            .set_group_totp_required("default", true)
            .await
            .unwrap();
        let t = store.technician_by_id(id).await.unwrap().unwrap();
        assert!(t.two_factor.needed() && !t.two_factor.enrolled());

        assert!(store.set_pending_totp(id, "aa").await.unwrap());
        // A second enrollment replaced the first: confirming the first fails.
        assert!(store.set_pending_totp(id, "bb").await.unwrap());
        let codes = ["h1".to_owned(), "h2".to_owned()];
        assert!(!store.confirm_totp(id, "aa", 10, &codes, 5).await.unwrap());
        assert!(store.confirm_totp(id, "bb", 10, &codes, 5).await.unwrap());
        assert!(!store.set_pending_totp(id, "cc").await.unwrap(), "enrolled");

        // Steps only move forward.
        assert!(!store.take_totp_step(id, 10).await.unwrap());
        assert!(store.take_totp_step(id, 11).await.unwrap());
        assert!(!store.take_totp_step(id, 11).await.unwrap());

        assert_eq!(store.use_recovery_code(id, "h1").await.unwrap(), Some(1));
        assert_eq!(store.use_recovery_code(id, "h1").await.unwrap(), None);
        assert_eq!(store.use_recovery_code(id, "nope").await.unwrap(), None);

        store.reset_totp(id).await.unwrap();
        let t = store.technician_by_id(id).await.unwrap().unwrap();
        assert!(!t.two_factor.enrolled() && t.two_factor.secret.is_none());
        assert_eq!(store.recovery_codes_left(id).await.unwrap(), 0);
        assert!(
            !format!("{:?}", t.two_factor).contains("bb"),
            "no secret in Debug"
        );
    }
}
