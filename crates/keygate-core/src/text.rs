//! The strings clients make Keygate store, each parsed once into a type that holds its bound.
//!
//! Everything here ends up in a row that is kept for a long time (keys, projects, members,
//! rules, workspace settings) or in a usage rollup, request-log entry or audit row written on
//! every request. An unbounded field there is a disk a client can fill one request at a time,
//! so every such string has a limit, checked at the edge with an error that names the field
//! and the limit ([`FieldError`]); inside, the types say the check was made. Limits count
//! characters, not bytes, where people type the text (names, descriptions), and ASCII where
//! the text is an identifier.

use std::fmt;
use std::net::IpAddr;

use crate::ids;

/// Why a client's string was refused: the field, and the rule it broke (limit included).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {rule}")]
pub struct FieldError {
    pub field: &'static str,
    pub rule: &'static str,
}

impl FieldError {
    const fn new(field: &'static str, rule: &'static str) -> Self {
        Self { field, rule }
    }
}

/// A validated text newtype: the struct, `as_str`, `into_string`, `Display` and `String::from`.
/// Attributes given before the name (docs, extra derives, `serde`) go on the struct; `parse`
/// is each type's own. Used here and for the key format's parts (`key.rs`).
macro_rules! text_type {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}
pub(crate) use text_type;

text_type!(
    /// What a person calls a key, project, member, routing rule or workspace: 1 to
    /// [`Name::MAX_CHARS`] characters after trimming, no control characters (names are shown
    /// in terminals and typed back in the CLI's delete confirmation).
    Name
);

impl Name {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let text = text.trim();
        let length = text.chars().count();
        if length == 0 || length > Self::MAX_CHARS || text.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "must be 1 to 100 characters without control characters",
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

text_type!(
    /// A free-text description: at most [`Description::MAX_CHARS`] characters; line breaks
    /// and tabs are allowed, other control characters are not.
    Description
);

impl Description {
    pub const MAX_CHARS: usize = 1000;

    /// `None` for a blank description (there is nothing to keep).
    pub fn parse(text: &str) -> Result<Option<Self>, FieldError> {
        let bad_control = |c: char| c.is_control() && c != '\n' && c != '\t' && c != '\r';
        if text.chars().count() > Self::MAX_CHARS || text.chars().any(bad_control) {
            return Err(FieldError::new(
                "description",
                "must be at most 1000 characters, without control characters other than line breaks and tabs",
            ));
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        Ok(Some(Self(text.to_owned())))
    }
}

text_type!(
    /// What a verify-mode caller is doing (`"POST /v1/chat"`): a usage-rollup key, so short.
    Operation
);

impl Operation {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let length = text.chars().count();
        if length == 0 || length > Self::MAX_CHARS || text.chars().any(char::is_control) {
            return Err(FieldError::new(
                "operation",
                "must be 1 to 128 printable characters, e.g. \"POST /v1/chat\"",
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

text_type!(
    /// A project a request names (verify, reservations): a project id, `proj_` and at most 64
    /// letters or digits. Recorded in usage rollups, so it is an id and never free text.
    ProjectRef
);

impl ProjectRef {
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        if ids::looks_like("proj", text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(FieldError::new(
                "project",
                "must be a project id: proj_ and at most 64 letters or digits",
            ))
        }
    }
}

text_type!(
    /// An end customer's address as a caller reports it: an IPv4 or IPv6 address, stored in
    /// its canonical form.
    SourceIp
);

impl SourceIp {
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let error = FieldError::new("source_ip", "must be an IPv4 or IPv6 address");
        // The longest IPv6 text form is 45 characters; don't parse a novel.
        if text.len() > 64 {
            return Err(error);
        }
        text.trim()
            .parse::<IpAddr>()
            .map(|ip| Self(ip.to_string()))
            .map_err(|_| error)
    }
}

/// Most permissions one key holds.
pub const MAX_PERMISSIONS: usize = 100;

text_type!(
    /// A permission a key holds or a request needs (`"results:read"`): 1 to 100 letters,
    /// digits and `: _ . - * /`.
    Permission
);

impl Permission {
    pub const MAX_LEN: usize = 100;

    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_.-*/".contains(&b));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(FieldError::new(
                "permission",
                "must be 1 to 100 letters, digits and : _ . - * / (e.g. \"results:read\")",
            ))
        }
    }

    /// A key's permissions: at most [`MAX_PERMISSIONS`], each valid, sorted, without
    /// duplicates.
    pub fn parse_all(texts: &[String]) -> Result<Vec<String>, FieldError> {
        if texts.len() > MAX_PERMISSIONS {
            return Err(FieldError::new(
                "permissions",
                "may list at most 100 permissions",
            ));
        }
        let mut all = texts
            .iter()
            .map(|t| Permission::parse(t).map(String::from))
            .collect::<Result<Vec<_>, _>>()?;
        all.sort();
        all.dedup();
        Ok(all)
    }
}

/// Most named rate-limit policies one workspace defines.
pub const MAX_POLICIES: usize = 50;

text_type!(
    /// The name of a workspace's rate-limit policy (a request header value): 1 to 40 ASCII
    /// letters, digits, `-` or `_`.
    PolicyName
);

impl PolicyName {
    pub const MAX_LEN: usize = 40;

    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(FieldError::new(
                "policy name",
                "must be 1 to 40 letters, digits, - or _",
            ))
        }
    }

    /// Checks how many policies a workspace defines.
    pub fn check_count(count: usize) -> Result<(), FieldError> {
        if count > MAX_POLICIES {
            return Err(FieldError::new(
                "rate_limit_policies",
                "may define at most 50 policies",
            ));
        }
        Ok(())
    }
}

/// Largest metadata object a key carries, as compact JSON.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Checks a key's metadata: at most [`MAX_METADATA_BYTES`] of compact JSON.
pub fn check_metadata(
    metadata: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), FieldError> {
    let size = serde_json::to_vec(metadata).map_or(usize::MAX, |v| v.len());
    if size > MAX_METADATA_BYTES {
        return Err(FieldError::new(
            "metadata",
            "must be at most 16 KiB of JSON",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn security_every_field_has_a_limit_and_names_it() {
        let errors = [
            Name::parse(&"n".repeat(101)).err(),
            Name::parse("   ").err(),
            Name::parse("a\u{1b}[2J").err(),
            Description::parse(&"d".repeat(1001)).err(),
            Description::parse("bell\u{7}").err(),
            Operation::parse(&"o".repeat(129)).err(),
            Operation::parse("").err(),
            ProjectRef::parse(&format!("proj_{}", "a".repeat(65))).err(),
            ProjectRef::parse("billing").err(),
            SourceIp::parse("not-an-ip").err(),
            SourceIp::parse(&"1".repeat(10_000)).err(),
            Permission::parse(&"p".repeat(101)).err(),
            Permission::parse_all(&vec!["a".to_string(); 101]).err(),
            PolicyName::parse(&"p".repeat(41)).err(),
            PolicyName::check_count(51).err(),
        ];
        for error in errors {
            let error = error.expect("refused");
            let message = error.to_string();
            assert!(message.starts_with(error.field), "{message}");
            assert!(
                message.chars().any(|c| c.is_ascii_digit()) || message.contains("IP"),
                "{message}"
            );
        }
        let mut big = serde_json::Map::new();
        big.insert(
            "blob".into(),
            serde_json::Value::String("x".repeat(17 * 1024)),
        );
        assert_eq!(check_metadata(&big).map_err(|e| e.field), Err("metadata"));
    }

    #[test]
    fn valid_text_passes_normalised() {
        assert_eq!(
            Name::parse("  ci deploy ").expect("name").as_str(),
            "ci deploy"
        );
        assert_eq!(
            Name::parse(&"ü".repeat(100))
                .expect("name")
                .as_str()
                .chars()
                .count(),
            100
        );
        assert_eq!(Description::parse("  ").expect("blank"), None);
        assert!(Description::parse("line one\nline two")
            .expect("ok")
            .is_some());
        assert_eq!(
            SourceIp::parse(" 2001:DB8::1 ").expect("ip").as_str(),
            "2001:db8::1"
        );
        assert!(ProjectRef::parse("proj_AbC123").is_ok());
        assert_eq!(
            Permission::parse_all(&["b:read".into(), "a:write".into(), "b:read".into()]),
            Ok(vec!["a:write".to_string(), "b:read".to_string()])
        );
    }

    proptest! {
        #[test]
        fn security_accepted_text_is_always_within_its_bound(text in any::<String>()) {
            if let Ok(name) = Name::parse(&text) {
                prop_assert!(name.as_str().chars().count() <= Name::MAX_CHARS);
            }
            if let Ok(Some(description)) = Description::parse(&text) {
                prop_assert!(description.as_str().chars().count() <= Description::MAX_CHARS);
            }
            if let Ok(operation) = Operation::parse(&text) {
                prop_assert!(operation.as_str().chars().count() <= Operation::MAX_CHARS);
            }
            if let Ok(project) = ProjectRef::parse(&text) {
                prop_assert!(project.as_str().len() <= 5 + 64);
            }
            if let Ok(ip) = SourceIp::parse(&text) {
                prop_assert!(ip.as_str().len() <= 45);
            }
        }
    }
}
