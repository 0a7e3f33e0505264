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

    const NAMES: [(Self, &'static str); 6] = [
        (Self::FILE_TO_USER, "file-to-user"),
        (Self::FILE_FROM_USER, "file-from-user"),
        (Self::SYSTEM_INFO, "system-info"),
        (Self::RUN_COMMAND, "run-command"),
        (Self::SCREEN_VIEW, "screen-view"),
        (Self::REBOOT, "reboot"),
    ];

    /// Every capability known to this version.
    pub const ALL: Self = Self(0b11_1111);

    /// From raw bits; unknown bits are dropped, so a newer portal cannot
    /// grant something this version would not ask consent for.
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits & Self::ALL.0)
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
        assert_eq!(Permissions::from_bits(u32::MAX), Permissions::ALL);
    }
}
