//! What a session may do beyond chat.
//!
//! Chat needs no permission. Everything else is granted by the technician's
//! group, carried in the signed trailer, and still needs the end user's yes.

use std::fmt;

/// A set of session capabilities, as a bit set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u32);

impl Permissions {
    /// No capability beyond chat.
    pub const NONE: Self = Self(0);
    /// Send files to the end user.
    pub const FILE_TO_USER: Self = Self(1);
    /// Fetch files from the end user.
    pub const FILE_FROM_USER: Self = Self(1 << 1);
    /// Read system information.
    pub const SYSTEM_INFO: Self = Self(1 << 2);
    /// Run commands.
    pub const RUN_COMMAND: Self = Self(1 << 3);
    /// View the screen.
    pub const SCREEN_VIEW: Self = Self(1 << 4);
    /// Reboot the machine.
    pub const REBOOT: Self = Self(1 << 5);
    /// Open a web address in the end user's browser.
    pub const OPEN_URL: Self = Self(1 << 6);
    /// Not a capability but the group's policy on asking: the technician
    /// may ask once for a set of capabilities for the whole session (the
    /// single prompt). Without it, every capability is asked for when it
    /// is first used.
    pub const SINGLE_PROMPT: Self = Self(1 << 16);

    const NAMES: [(Self, &'static str); 8] = [
        (Self::FILE_TO_USER, "file-to-user"),
        (Self::FILE_FROM_USER, "file-from-user"),
        (Self::SYSTEM_INFO, "system-info"),
        (Self::RUN_COMMAND, "run-command"),
        (Self::SCREEN_VIEW, "screen-view"),
        (Self::REBOOT, "reboot"),
        (Self::OPEN_URL, "open-url"),
        (Self::SINGLE_PROMPT, "single-prompt"),
    ];

    /// Every capability known to this version (the single prompt is a
    /// policy, named on its own).
    pub const ALL: Self = Self(0b111_1111);

    /// From raw bits; unknown bits are dropped, so a newer portal cannot
    /// grant something this version would not ask consent for.
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits & (Self::ALL.0 | Self::SINGLE_PROMPT.0))
    }

    /// The capabilities alone (without the single-prompt policy).
    pub const fn capabilities(self) -> Self {
        Self(self.0 & Self::ALL.0)
    }

    /// Everything in `self` that is not in `other`.
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The intersection.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Each capability in the set on its own, in a fixed order.
    pub fn each(self) -> impl Iterator<Item = Self> {
        Self::NAMES
            .into_iter()
            .map(|(v, _)| v)
            .filter(move |v| *v != Self::SINGLE_PROMPT && self.contains(*v))
    }

    /// The name of a single capability (`run-command`), or "" for a set.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(v, _)| *v == self)
            .map_or("", |(_, n)| n)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether all of `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Parses a comma-separated list of names (`all` and `none` allowed).
    pub fn parse_list(s: &str) -> Result<Self, String> {
        let mut p = Self::NONE;
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            p = match name {
                "all" => Self::ALL,
                "none" => p,
                _ => p.union(
                    Self::NAMES
                        .iter()
                        .find(|(_, n)| *n == name)
                        .map(|(v, _)| *v)
                        .ok_or_else(|| {
                            format!(
                                "unknown permission {name:?}; known: {}",
                                Self::NAMES.map(|(_, n)| n).join(", ")
                            )
                        })?,
                ),
            };
        }
        Ok(p)
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = Self::NAMES
            .iter()
            .filter(|(v, _)| self.contains(*v))
            .map(|(_, n)| *n)
            .collect();
        if names.is_empty() {
            f.write_str("chat only")
        } else {
            write!(f, "chat, {}", names.join(", "))
        }
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permissions({self})")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        let p = Permissions::parse_list("system-info, run-command").unwrap();
        assert_eq!(p.to_string(), "chat, system-info, run-command");
        assert_eq!(Permissions::parse_list("all").unwrap(), Permissions::ALL);
        assert!(Permissions::parse_list("fly").is_err());
        assert_eq!(
            Permissions::from_bits(u32::MAX),
            Permissions::ALL.union(Permissions::SINGLE_PROMPT)
        );
        let p = Permissions::parse_list("all, single-prompt").unwrap();
        assert!(p.contains(Permissions::SINGLE_PROMPT));
        assert_eq!(p.capabilities(), Permissions::ALL);
        assert_eq!(
            Permissions::parse_list("open-url,file-to-user")
                .unwrap()
                .each()
                .map(Permissions::name)
                .collect::<Vec<_>>(),
            ["file-to-user", "open-url"]
        );
    }
}
