//! The dashboard against a real server over HTTP: signing in, the protections every page and
//! form has, and the API keys pages calling the same domain code as the API. One test binary.
//! (`tests/browser` drives the same pages in Chromium.)

mod helpers;
mod identities;
mod keys;
mod logs;
mod security;
mod sign_in;
