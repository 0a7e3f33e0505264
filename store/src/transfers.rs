//! Handing a session from one technician to another of their group.
//!
//! Three steps, each one conditional `UPDATE` (so racing nodes agree):
//! the holder offers the session ([`Store::offer_transfer`]); the
//! technician offered it accepts with the key their console will prove
//! ([`Store::accept_transfer`]); once the holder's console has told the
//! applet that key inside the end-to-end channel, the holder completes
//! it ([`Store::complete_transfer`]) and the session is the new
//! technician's, with their key.

use crate::{Result, SessionGuid, SessionRecord, Store};
use lifeline_protocol::hex;

/// Where an attempt to change a transfer got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transfer {
    /// Done; the session as it is now.
    Done(Box<SessionRecord>),
    /// The session is not in the state this step needs (not held by the
    /// caller, not offered to them, ended, or not yet accepted).
    NotYours,
}

impl Store {
    /// Offers `holder`'s session, while it runs (paired or direct), to
    /// technician `to` (replacing any earlier offer), leaving the
    /// session's applet secret for the accepting console to take (see
    /// [`Store::take_applet_secret`]); `to = None` withdraws the offer.
    pub async fn offer_transfer(
        &self,
        guid: &SessionGuid,
        holder: i64,
        to: Option<(i64, [u8; 32])>,
    ) -> Result<Transfer> {
        let done = sqlx::query(
            "UPDATE sessions SET transfer_to = $3, transfer_pin = NULL, applet_secret = $4 \
             WHERE guid = $1 AND technician_id = $2 AND state IN ('paired', 'direct')",
        )
        .bind(guid.to_string())
        .bind(holder)
        .bind(to.map(|(id, _)| id))
        .bind(to.map(|(_, secret)| hex::encode(&secret)))
        .execute(self.writes())
        .await?
        .rows_affected()
            > 0;
        self.transfer_outcome(guid, done).await
    }

    /// The technician offered the session accepts it: their console will
    /// prove `console_pin`.
    pub async fn accept_transfer(
        &self,
        guid: &SessionGuid,
        to: i64,
        console_pin: &[u8; 32],
    ) -> Result<Transfer> {
        let done = sqlx::query(
            "UPDATE sessions SET transfer_pin = $3 \
             WHERE guid = $1 AND transfer_to = $2 AND state <> 'ended'",
        )
        .bind(guid.to_string())
        .bind(to)
        .bind(hex::encode(console_pin))
        .execute(self.writes())
        .await?
        .rows_affected()
            > 0;
        self.transfer_outcome(guid, done).await
    }

    /// The holder's console has handed the session over: it becomes the
    /// accepting technician's, with their console's key.
    pub async fn complete_transfer(&self, guid: &SessionGuid, holder: i64) -> Result<Transfer> {
        let done = sqlx::query(
            "UPDATE sessions SET technician_id = transfer_to, console_pin = transfer_pin, \
             transfer_to = NULL, transfer_pin = NULL \
             WHERE guid = $1 AND technician_id = $2 AND transfer_to IS NOT NULL \
             AND transfer_pin IS NOT NULL AND state <> 'ended'",
        )
        .bind(guid.to_string())
        .bind(holder)
        .execute(self.writes())
        .await?
        .rows_affected()
            > 0;
        self.transfer_outcome(guid, done).await
    }

    async fn transfer_outcome(&self, guid: &SessionGuid, done: bool) -> Result<Transfer> {
        Ok(match self.session(guid).await? {
            Some(r) if done => Transfer::Done(Box::new(r)),
            _ => Transfer::NotYours,
        })
    }
}
