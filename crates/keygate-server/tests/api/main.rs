//! Integration tests: a real server on a random loopback port, spoken to over HTTP.
//! One test binary so they build once.

#[macro_use]
mod backends;

mod audit;
mod errors;
mod helpers;
mod idempotency;
mod isolation;
mod lifecycle;
mod limits;
mod logs;
mod metrics;
mod openapi;
mod roles;
mod rotation;
mod usage;
mod verify;
