//! What differs between the two ends of a session, in one place: the
//! session's one role type ([`Role`], the protocol's) and what each role
//! does differently.

use crate::linktest::Direction;
use lifeline_protocol::e2e::EndedBy;
pub use lifeline_protocol::relay::Role;

/// The role-dependent choices of the session core.
pub trait RoleExt: Copy {
    /// Who "we" are in an `End` frame.
    fn ended_by(self) -> EndedBy;
    /// Whether this end decides which proven path the session moves to
    /// (the console does; the applet follows its `Switch`).
    fn decides_path(self) -> bool;
    /// The first channel number this end opens (the console's are odd,
    /// the applet's even, so both can open at once without a collision).
    fn first_channel(self) -> u32;
    /// Whether `channel` was opened by this end.
    fn opened(self, channel: u32) -> bool;
    /// The direction of a link test this end sends.
    fn sends(self) -> Direction;
}

impl RoleExt for Role {
    fn ended_by(self) -> EndedBy {
        match self {
            Role::Applet => EndedBy::User,
            Role::Console => EndedBy::Technician,
        }
    }

    fn decides_path(self) -> bool {
        self == Role::Console
    }

    fn first_channel(self) -> u32 {
        match self {
            Role::Console => 1,
            Role::Applet => 2,
        }
    }

    fn opened(self, channel: u32) -> bool {
        channel % 2 == self.first_channel() % 2
    }

    fn sends(self) -> Direction {
        match self {
            Role::Console => Direction::ToUser,
            Role::Applet => Direction::FromUser,
        }
    }
}
