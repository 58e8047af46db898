//! The store conformance suite: one set of scenarios, run against SQLite and against
//! PostgreSQL (each test in a database of its own, dropped when the test passes, so runs can
//! repeat and overlap). The PostgreSQL tests are `#[ignore]`d; `scripts/test` runs them when
//! PostgreSQL answers (see `keygate_store::test_support`).
//!
//! Each scenario is an `async fn(&TestDb)`; `conformance!` turns a module's list of them into
//! `sqlite::<name>` and `postgres::<name>` tests. All in one binary so they build once.

/// Declares a `#[tokio::test]` per backend for each listed scenario of the calling module.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = crate::harness::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL: KEYGATE_TEST_DATABASE_URL (scripts/test sets it when PostgreSQL answers)"]
                async fn $name() {
                    let db = crate::harness::TestDb::postgres().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

mod audit;
mod dashboard;
mod fixtures;
mod harness;
mod idempotency;
mod identities;
mod keys;
mod persistence;
mod routing_rules;
mod secrets;
mod usage;
mod webhook_events;
mod workspaces;
