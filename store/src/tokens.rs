//! Bearer tokens of logged-in technicians.
//!
//! Only the SHA-256 of a token is stored (as hex), so a leaked database or
//! backup does not hand out live logins; the caller hashes the presented
//! token and looks the hash up.

use crate::error::conflict_on_unique;
use crate::rows::get;
use crate::technicians::{from_row, technician_columns};
use crate::{Result, Store, Technician};
use lifeline_protocol::hex;

/// How stale a token's recorded last use may be before a use writes it
/// again (the idle limit is minutes: half a minute of slack is nothing).
pub const TOUCH_EVERY_MS: i64 = 30_000;

impl Store {
    /// Stores a new token's hash for `technician_id`, valid until
    /// `expires_at_ms` (exclusive).
    pub async fn insert_token(
        &self,
        token_hash: &[u8; 32],
        technician_id: i64,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (token_hash, technician_id, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(hex::encode(token_hash))
        .bind(technician_id)
        .bind(now_ms)
        .bind(expires_at_ms)
        .execute(self.writes())
        .await
        // Only reachable with a broken random number generator.
        .map_err(|e| conflict_on_unique(e, || "this token is already registered".to_owned()))?;
        Ok(())
    }

    /// The technician a token belongs to, if the token exists and has not
    /// expired at `now_ms`, and the technician is not disabled (disabling
    /// deletes their tokens too; this also covers one issued by a login
    /// that raced the disabling).
    ///
    /// A token unused for longer than its technician's group allows
    /// (`groups.idle_secs`) is refused as well; a token that is taken
    /// counts as used now (written at most every [`TOUCH_EVERY_MS`], so a
    /// busy console costs no write per request).
    pub async fn technician_by_token(
        &self,
        token_hash: &[u8; 32],
        now_ms: i64,
    ) -> Result<Option<Technician>> {
        let hash = hex::encode(token_hash);
        let row = sqlx::query(concat!(
            "SELECT ",
            technician_columns!(),
            ", COALESCE(k.last_used_ms, k.created_at_ms) AS token_used_ms",
            " FROM technicians t JOIN groups g ON g.id = t.group_id",
            " JOIN tokens k ON k.technician_id = t.id",
            " WHERE k.token_hash = $1 AND k.expires_at_ms > $2 AND t.disabled_at_ms IS NULL",
            " AND (g.idle_secs IS NULL",
            " OR COALESCE(k.last_used_ms, k.created_at_ms) > $2 - g.idle_secs * 1000)"
        ))
        .bind(&hash)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let found = from_row(&row)?;
        // Read with the technician, so a token used a moment ago costs no
        // write (one statement fewer on every console connection).
        let used: i64 = get(&row, "token_used_ms")?;
        if used < now_ms - TOUCH_EVERY_MS {
            sqlx::query(
                "UPDATE tokens SET last_used_ms = $2 WHERE token_hash = $1 \
                 AND COALESCE(last_used_ms, created_at_ms) < $3",
            )
            .bind(&hash)
            .bind(now_ms)
            .bind(now_ms - TOUCH_EVERY_MS)
            .execute(self.writes())
            .await?;
        }
        Ok(Some(found))
    }

    /// Forgets one token (log-out). Returns whether it existed.
    pub async fn delete_token(&self, token_hash: &[u8; 32]) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tokens WHERE token_hash = $1")
            .bind(hex::encode(token_hash))
            .execute(self.writes())
            .await?
            .rows_affected();
        Ok(done > 0)
    }

    /// Forgets every token of a technician (`gateway admin technician
    /// revoke-tokens`). Returns how many there were.
    pub async fn revoke_tokens(&self, technician_id: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM tokens WHERE technician_id = $1")
            .bind(technician_id)
            .execute(self.writes())
            .await?
            .rows_affected())
    }

    /// Deletes tokens expired at `now_ms`; returns how many.
    pub async fn purge_expired_tokens(&self, now_ms: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM tokens WHERE expires_at_ms <= $1")
            .bind(now_ms)
            .execute(self.writes())
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::TOUCH_EVERY_MS;

    /// A token's use is written only once it is older than
    /// [`TOUCH_EVERY_MS`], and then it keeps the login alive.
    #[tokio::test]
    async fn a_token_counts_as_used_when_its_last_use_is_due() {
        let (store, id) = crate::test_store_with_technician().await;
        store.set_group_idle("default", Some(60)).await.unwrap();
        const T0: i64 = 1_000_000_000;
        let token = [7; 32];
        store
            .insert_token(&token, id, T0, T0 + 3_600_000)
            .await
            .unwrap();
        // Used soon after: no write, and none needed.
        assert!(
            store
                .technician_by_token(&token, T0 + 20_000)
                .await
                .unwrap()
                .is_some()
        );
        // Used 40 s in: due, so written.
        assert!(
            store
                .technician_by_token(&token, T0 + TOUCH_EVERY_MS + 10_000)
                .await
                .unwrap()
                .is_some()
        );
        // 85 s in, 45 s after that use: alive thanks to it.
        assert!(
            store
                .technician_by_token(&token, T0 + 85_000)
                .await
                .unwrap()
                .is_some()
        );
        // Unused for more than 60 s since: ended.
        assert!(
            store
                .technician_by_token(&token, T0 + 150_000)
                .await
                .unwrap()
                .is_none()
        );
    }
}
