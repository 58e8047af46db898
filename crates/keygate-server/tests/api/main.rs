//! Integration tests: a real server on a random loopback port, spoken to over HTTP.
//! One test binary so they build once.

#[macro_use]
mod backends;

mod audit;
mod contract;
mod errors;
mod gateway_ai;
mod gateway_e2e;
mod gateway_proxy;
mod gateway_rules;
mod helpers;
mod idempotency;
mod identities;
mod isolation;
mod leaks;
mod lifecycle;
mod limits;
mod logs;
mod metrics;
mod openapi;
mod revocation_redis;
mod roles;
mod rotation;
mod scaling_postgres_redis;
mod security_ai;
mod security_auth;
mod security_gateway;
mod security_input;
mod security_reservations;
mod store_outage_postgres;
mod upstream;
mod usage;
mod verify;
mod webhook_events;
mod webhooks;
mod workspace_settings;
