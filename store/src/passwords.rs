//! Passwords: a group's policy (least length and strength, greatest age).
//! A new password, the technician's own or an administrator's, is stored
//! by [`Store::reset_password`].
//!
//! The store keeps the policy and when each password was set; the
//! gateway judges passwords against it (it holds the strength estimator
//! and the hasher).

use crate::{Result, Store, StoreError};

/// What a group asks of its technicians' passwords. `None`: no rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PasswordPolicy {
    /// At least this many characters.
    pub min_length: Option<i64>,
    /// At least this strength (0–4, the zxcvbn score).
    pub min_strength: Option<i64>,
    /// A password older than this (seconds) must be changed at the next
    /// login.
    pub max_age_secs: Option<i64>,
}

impl PasswordPolicy {
    /// No rule at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl std::fmt::Display for PasswordPolicy {
    /// As `group list` shows it: "passwords of 12+ characters, strength
    /// 3+, changed every 90 days".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = self.min_length {
            parts.push(format!("{n}+ characters"));
        }
        if let Some(s) = self.min_strength {
            parts.push(format!("strength {s}+ of 4"));
        }
        if let Some(secs) = self.max_age_secs {
            let days = (secs + 86_399) / 86_400;
            parts.push(format!("changed every {days} days"));
        }
        if parts.is_empty() {
            f.write_str("any password")
        } else {
            write!(f, "passwords of {}", parts.join(", "))
        }
    }
}

impl Store {
    /// Sets `group`'s password policy; returns what it was.
    pub async fn set_group_password_policy(
        &self,
        group: &str,
        policy: PasswordPolicy,
    ) -> Result<PasswordPolicy> {
        let group = group.trim();
        let mut tx = self.begin_write().await?;
        let before: Option<(Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT password_min_length, password_min_strength, password_max_age_secs \
             FROM groups WHERE name = $1",
        )
        .bind(group)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((min_length, min_strength, max_age_secs)) = before else {
            return Err(StoreError::NotFound(format!(
                "there is no group named {group:?}"
            )));
        };
        sqlx::query(
            "UPDATE groups SET password_min_length = $2, password_min_strength = $3, \
             password_max_age_secs = $4 WHERE name = $1",
        )
        .bind(group)
        .bind(policy.min_length)
        .bind(policy.min_strength)
        .bind(policy.max_age_secs)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PasswordPolicy {
            min_length,
            min_strength,
            max_age_secs,
        })
    }
}
