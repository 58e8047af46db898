//! Who may do what: the access levels routes are grouped into, and which roles each admits.
//!
//! The server keeps one table from route to [`Access`] (`keygate-server`'s `routes::table`);
//! this module holds the part that needs no HTTP, so the matrix is tested exhaustively here.
//!
//! The design decision: anything that *consumes* (verify, reservations and their settlement)
//! or *reports spend* (`POST /v1/usage`) is [`Access::Meter`], which a viewer does not have —
//! a verification counts against rate limits and budgets, so a read-only member who could
//! verify could exhaust a customer's limits or charge spend. Viewers read; the `service` role
//! meters without being able to read or change keys.

use crate::model::Role;

/// What a route needs from its caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Any member, whatever their role (`GET /v1/me`).
    Member,
    /// Reading keys, projects, usage, audit: owners, editors, viewers.
    Read,
    /// Changing keys, projects, routing rules: owners and editors.
    Write,
    /// Verifying, reserving, settling, reporting usage: owners, editors and services.
    Meter,
    /// Members and workspace settings: owners only.
    Owner,
    /// Reporting leaked keys: owners, editors and reporters (a scanner's token).
    Report,
}

impl Access {
    /// Whether a member with `role` may call a route of this access level.
    pub fn allows(self, role: Role) -> bool {
        use Role::*;
        match self {
            Access::Member => true,
            Access::Report => matches!(role, Owner | Editor | Reporter),
            Access::Read => matches!(role, Owner | Editor | Viewer),
            Access::Write => matches!(role, Owner | Editor),
            Access::Meter => matches!(role, Owner | Editor | Service),
            Access::Owner => matches!(role, Owner),
        }
    }

    /// The roles this level admits, for documentation and error messages.
    pub fn roles(self) -> Vec<Role> {
        ALL_ROLES
            .into_iter()
            .filter(|role| self.allows(*role))
            .collect()
    }
}

/// Every role, in the order the documentation lists them.
pub const ALL_ROLES: [Role; 5] = [
    Role::Owner,
    Role::Editor,
    Role::Viewer,
    Role::Service,
    Role::Reporter,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix() {
        // (access, owner, editor, viewer, service, reporter)
        let table = [
            (Access::Member, true, true, true, true, true),
            (Access::Read, true, true, true, false, false),
            (Access::Write, true, true, false, false, false),
            (Access::Meter, true, true, false, true, false),
            (Access::Owner, true, false, false, false, false),
            (Access::Report, true, true, false, false, true),
        ];
        for (access, owner, editor, viewer, service, reporter) in table {
            assert_eq!(access.allows(Role::Owner), owner, "{access:?} owner");
            assert_eq!(access.allows(Role::Editor), editor, "{access:?} editor");
            assert_eq!(access.allows(Role::Viewer), viewer, "{access:?} viewer");
            assert_eq!(access.allows(Role::Service), service, "{access:?} service");
            assert_eq!(
                access.allows(Role::Reporter),
                reporter,
                "{access:?} reporter"
            );
        }
    }

    #[test]
    fn viewers_never_consume_and_services_never_manage() {
        assert!(!Access::Meter.allows(Role::Viewer));
        assert!(!Access::Write.allows(Role::Service));
        assert!(!Access::Read.allows(Role::Service));
        assert!(!Access::Owner.allows(Role::Service));
    }
}
