//! The request fields that become usage-rollup keys, checked before a request is counted:
//! operations, projects and source addresses are bounded so a caller cannot grow the rollups
//! with free text.

use keygate_core::text::{Operation, ProjectRef, SourceIp};

use crate::error::ApiError;

/// The operation recorded when a verify-mode caller names none.
pub const DEFAULT_OPERATION: &str = "verify";

/// Longest accepted `operation`; operations are rollup keys, so they are kept short.
pub const MAX_OPERATION_CHARS: usize = Operation::MAX_CHARS;

/// The caller's `operation`, or [`DEFAULT_OPERATION`]; bounded (see
/// `keygate_core::text::Operation`), since operations are rollup keys.
pub fn valid_operation(operation: Option<String>) -> Result<String, ApiError> {
    match operation {
        Some(operation) => Ok(Operation::parse(&operation)?.into_string()),
        None => Ok(DEFAULT_OPERATION.to_owned()),
    }
}

/// An end customer's address as the caller reports it; must be an IP address.
pub fn valid_source_ip(source_ip: Option<String>) -> Result<Option<String>, ApiError> {
    Ok(source_ip
        .map(|ip| SourceIp::parse(&ip).map(SourceIp::into_string))
        .transpose()?)
}

/// The project a verify or reservation request names: a project id, never free text, since
/// it becomes a usage-rollup key.
pub fn valid_project(project: Option<&str>) -> Result<Option<&str>, ApiError> {
    if let Some(project) = project {
        ProjectRef::parse(project)?;
    }
    Ok(project)
}
