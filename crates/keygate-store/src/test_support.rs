//! A PostgreSQL database per test, for this crate's conformance suite and the server's tests
//! (behind the `test-support` feature, so it never reaches a release build).
//!
//! `KEYGATE_TEST_DATABASE_URL` names the server; each test creates a database of its own there,
//! so runs can repeat and overlap, and drops it when it passes — a failing test leaves its
//! database behind to look at. The tests that need it are `#[ignore]`d with `postgres` in
//! their path (`scripts/test` runs them when PostgreSQL answers); run without the variable,
//! they panic saying how to set it.

use sqlx::{Connection, Executor, PgConnection};

/// The environment variable naming the PostgreSQL server tests may create databases on.
pub const PG_URL_VAR: &str = "KEYGATE_TEST_DATABASE_URL";

/// The PostgreSQL server tests may create databases on, from [`PG_URL_VAR`]; a panic saying
/// how to set it when it is unset.
pub fn pg_url() -> String {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "this test needs PostgreSQL: set {PG_URL_VAR} (e.g. \
             postgres://postgres@127.0.0.1:5432/test), or run scripts/test, which sets it \
             when PostgreSQL answers there"
        ),
    }
}

/// A PostgreSQL database made for one test.
pub struct PgTestDatabase {
    admin_url: String,
    /// `kg_<suite>_db_…`, lowercase.
    pub name: String,
    /// The server's URL with this database in it.
    pub url: String,
}

impl PgTestDatabase {
    /// Creates a database named for `suite` (`test`, `api`) on the server at [`pg_url`].
    pub async fn create(suite: &str) -> Self {
        let admin_url = pg_url();
        let name = format!(
            "kg_{suite}_{}",
            keygate_core::ids::new_id("db").to_lowercase()
        );
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL admin database");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// Drops the database. Call it after everything connected to it is closed; not calling it
    /// (a panicking test) leaves the database behind.
    pub async fn drop_database(self) {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to the PostgreSQL admin database");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop the test database");
    }
}

/// The admin URL with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_swapped_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "kg_x"),
            "postgres://postgres@127.0.0.1:5432/kg_x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "kg_x"),
            "postgres://u:p@h/kg_x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "kg_x"), "postgres://h/kg_x");
    }
}
