//! A group's password policy applied: the least length and strength of a
//! new password (strength as zxcvbn estimates it, 0–4: how many guesses a
//! password survives, counting dictionaries, names, dates and keyboard
//! walks rather than character classes), and the greatest age before a
//! change is due.

use lifeline_store::{PasswordPolicy, Technician};

/// The least length of any password, whatever the policy.
pub const MIN_LENGTH: usize = 8;

/// Characters zxcvbn looks at: its work grows with the length, and
/// strength beyond this is beyond doubt.
const JUDGED_CHARS: usize = 100;

/// Whether `password` meets `policy`: `Err` says what is missing, in
/// words for the person choosing it. `user_inputs` (their e-mail, name,
/// group) count as guessable. Blocking work of a few milliseconds: run it
/// beside the hashing, off the async runtime.
pub fn judge(policy: &PasswordPolicy, password: &str, user_inputs: &[&str]) -> Result<(), String> {
    let chars = password.chars().count();
    if password.trim().is_empty() {
        return Err("the password is empty".into());
    }
    if chars < MIN_LENGTH && policy.min_length.is_none_or(|m| m <= MIN_LENGTH as i64) {
        return Err(format!(
            "the password is too short: at least {MIN_LENGTH} characters, please (it has {chars})"
        ));
    }
    if let Some(min) = policy.min_length.filter(|m| chars < *m as usize) {
        return Err(format!(
            "the password is too short: your group asks for at least {min} characters (it \
             has {chars})"
        ));
    }
    if let Some(min) = policy.min_strength {
        let judged: String = password.chars().take(JUDGED_CHARS).collect();
        let entropy = zxcvbn::zxcvbn(&judged, user_inputs);
        let score = i64::from(u8::from(entropy.score()));
        if score < min {
            let why = entropy
                .feedback()
                .and_then(|f| f.warning())
                .map(|w| format!(" ({w})"))
                .unwrap_or_default();
            return Err(format!(
                "the password is too easy to guess{why}: it rates {score} of 4 and your \
                 group asks for {min}; a few unrelated words make a strong one"
            ));
        }
    }
    Ok(())
}

/// If the technician's password is older than their group allows: the
/// greatest age in days.
pub fn expired(tech: &Technician, now_ms: i64) -> Option<i64> {
    let max = tech.password_policy.max_age_secs?;
    let age_ms = now_ms.saturating_sub(tech.password_set_at_ms);
    (age_ms > max.saturating_mul(1000)).then_some((max + 86_399) / 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min_length: Option<i64>, min_strength: Option<i64>) -> PasswordPolicy {
        PasswordPolicy {
            min_length,
            min_strength,
            max_age_secs: None,
        }
    }

    #[test]
    fn length_and_strength_are_judged_as_asked() {
        let p = policy(Some(12), Some(3));
        assert!(judge(&p, "short", &[]).unwrap_err().contains("at least 12"));
        let weak = judge(&p, "password1234", &[]).unwrap_err();
        assert!(weak.contains("too easy to guess"), "{weak}");
        // The person's own e-mail is as guessable as a dictionary word.
        judge(&p, "ada@example.com", &[]).unwrap();
        assert!(judge(&p, "ada@example.com", &["ada@example.com"]).is_err());
        judge(&p, "tangerine orbit velvet canyon", &[]).unwrap();
        // No policy: eight characters, whatever they are.
        judge(&PasswordPolicy::default(), "xxxxxxxx", &[]).unwrap();
        assert!(judge(&PasswordPolicy::default(), "xxxxxxx", &[]).is_err());
        assert!(judge(&PasswordPolicy::default(), "        ", &[]).is_err());
    }

    #[test]
    fn a_very_long_password_is_judged_quickly_and_passes() {
        let long = "correct horse battery staple ".repeat(400);
        let started = std::time::Instant::now();
        judge(&policy(None, Some(4)), &long, &[]).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
