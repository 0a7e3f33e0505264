//! The 6-digit PIN an end user types on the gateway's web page to
//! download a session's applet (`tech-console session new --pin`), and
//! the one-time link that does the same from an e-mail (`--link`).
//!
//! A link's token is 128 random bits, kept only as its SHA-256 (hex); it
//! works until it is used or the session expires.
//!
//! A PIN lives in its session's row until it is used (once) or expires; a
//! unique index keeps live PINs distinct. Expired PINs are cleared before a
//! new one is chosen, so the space of a million is shared only by the
//! PINs actually live.

use crate::error::conflict_on_unique;
use crate::{Result, SessionGuid, Store, StoreError};

impl Store {
    /// Gives `guid` the PIN `pin` until `expires_at_ms`. `false` if
    /// another live session holds that PIN (choose another).
    pub async fn set_session_pin(
        &self,
        guid: &SessionGuid,
        pin: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE sessions SET pin = NULL, pin_expires_at_ms = NULL WHERE pin_expires_at_ms <= $1")
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        let set = sqlx::query(
            "UPDATE sessions SET pin = $2, pin_expires_at_ms = $3 \
             WHERE guid = $1 AND state = 'created'",
        )
        .bind(guid.to_string())
        .bind(pin)
        .bind(expires_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_on_unique(e, String::new));
        match set {
            Ok(done) if done.rows_affected() == 1 => {
                tx.commit().await?;
                Ok(true)
            }
            Ok(_) => Err(StoreError::NotFound(format!(
                "there is no session {guid} waiting for its applet"
            ))),
            // Rolled back (the transaction is dropped): another live
            // session holds this PIN.
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uses a PIN: the session it belongs to, if it is live (not expired,
    /// not used, the session not yet joined); the PIN stops working either
    /// way it is found.
    pub async fn take_session_pin(&self, pin: &str, now_ms: i64) -> Result<Option<SessionGuid>> {
        let guid: Option<String> = sqlx::query_scalar(
            "UPDATE sessions SET pin = NULL, pin_expires_at_ms = NULL \
             WHERE pin = $1 AND pin_expires_at_ms > $2 AND state = 'created' RETURNING guid",
        )
        .bind(pin)
        .bind(now_ms)
        .fetch_optional(self.writes())
        .await?;
        guid.map(|g| crate::rows::guid("sessions.guid", &g))
            .transpose()
    }

    /// Gives `guid` a one-time link, by its token's hash.
    pub async fn set_session_link(&self, guid: &SessionGuid, token_hash: &str) -> Result<()> {
        let done =
            sqlx::query("UPDATE sessions SET link_hash = $2 WHERE guid = $1 AND state = 'created'")
                .bind(guid.to_string())
                .bind(token_hash)
                .execute(self.writes())
                .await?
                .rows_affected();
        if done != 1 {
            return Err(StoreError::NotFound(format!(
                "there is no session {guid} waiting for its applet"
            )));
        }
        Ok(())
    }

    /// The session a link is for, if the link still works (not used, the
    /// session neither joined nor expired, its applet not downloaded);
    /// the link is not used up.
    pub async fn session_by_link(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<SessionGuid>> {
        let guid: Option<String> = sqlx::query_scalar(
            "SELECT guid FROM sessions WHERE link_hash = $1 AND state = 'created' \
             AND expires_at_ms > $2 AND downloaded = 0",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        guid.map(|g| crate::rows::guid("sessions.guid", &g))
            .transpose()
    }

    /// Uses a link: its session, if the link still works; it stops
    /// working either way it is found.
    pub async fn take_session_link(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<SessionGuid>> {
        let guid: Option<String> = sqlx::query_scalar(
            "UPDATE sessions SET link_hash = NULL WHERE link_hash = $1 AND state = 'created' \
             AND expires_at_ms > $2 RETURNING guid",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(self.writes())
        .await?;
        guid.map(|g| crate::rows::guid("sessions.guid", &g))
            .transpose()
    }

    /// How many PINs are live now (the guessing odds depend on it).
    pub async fn live_pins(&self, now_ms: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM sessions WHERE pin IS NOT NULL AND pin_expires_at_ms > $1",
        )
        .bind(now_ms)
        .fetch_one(self.pool())
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::{NewSession, Permissions, SessionGuid, Store};

    async fn session(store: &Store, tech: i64, n: u8) -> SessionGuid {
        let guid = SessionGuid::from_bytes([n; 16]);
        store
            .create_session(NewSession {
                guid,
                technician_id: tech,
                label: String::new(),
                console_pin: [1; 32],
                applet_secret: [2; 32],
                admission_key: [3; 32],
                permissions: Permissions::NONE,
                created_at_ms: 0,
                expires_at_ms: 10_000_000,
            })
            .await
            .unwrap();
        guid
    }

    #[tokio::test]
    async fn live_pins_are_distinct_used_once_and_freed_when_expired() {
        let (store, tech) = crate::test_store_with_technician().await;
        let (a, b) = (
            session(&store, tech, 1).await,
            session(&store, tech, 2).await,
        );
        assert!(store.set_session_pin(&a, "123456", 1_000, 0).await.unwrap());
        // Taken by a live PIN: choose another.
        assert!(!store.set_session_pin(&b, "123456", 1_000, 0).await.unwrap());
        assert_eq!(store.live_pins(0).await.unwrap(), 1);
        // Expired, it is free again (and no longer works).
        assert_eq!(store.take_session_pin("123456", 1_000).await.unwrap(), None);
        assert!(
            store
                .set_session_pin(&b, "123456", 5_000, 2_000)
                .await
                .unwrap()
        );
        assert_eq!(
            store.take_session_pin("123456", 2_500).await.unwrap(),
            Some(b)
        );
        assert_eq!(
            store.take_session_pin("123456", 2_500).await.unwrap(),
            None,
            "used"
        );
        assert_eq!(store.live_pins(2_500).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_link_works_once_and_only_while_its_session_waits_for_its_applet() {
        let (store, tech) = crate::test_store_with_technician().await;
        let a = session(&store, tech, 1).await;
        store.set_session_link(&a, "h").await.unwrap();
        assert_eq!(store.session_by_link("h", 5).await.unwrap(), Some(a));
        assert_eq!(
            store.session_by_link("h", 10_000_000).await.unwrap(),
            None,
            "expired"
        );
        assert_eq!(store.session_by_link("nope", 5).await.unwrap(), None);
        assert_eq!(store.take_session_link("h", 5).await.unwrap(), Some(a));
        assert_eq!(store.take_session_link("h", 5).await.unwrap(), None, "used");
        assert_eq!(store.session_by_link("h", 5).await.unwrap(), None);
    }
}
