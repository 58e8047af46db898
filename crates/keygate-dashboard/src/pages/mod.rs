//! The HTML, one module per page family, over one layout. maud escapes every interpolated
//! value, so a key's name or description cannot inject markup.

pub mod identities;
pub mod keys;
pub mod layout;
pub mod sign_in;
