//! `kg-seed`: fills an SQLite store with many keys for `bench/run.sh`, in seconds.
//!
//! The workspace, one template key and a few hundred revoked keys go through the real store
//! (`bootstrap::create_workspace`, `Store::create_key`). The bulk is copied from the template's
//! rows by SQL — every column the template row has, read from `pragma_table_info`, so a column
//! a later migration adds is copied too — with only id, name, display form and secret hash set
//! per key. One audited write transaction per key would take tens of minutes for 1M keys.
//! The result is checked by reading samples back through `Store::key_by_hash`, the lookup
//! verification itself uses, before the "seeded" marker is written.
//!
//! Usage: `kg-seed --dir DIR [--keys 1000000] [--hot 10000] [--per-minute 1000000]`
//!
//! Writes into DIR: `keygate.db` and `keygate.secret` (what `keygate serve --database-url
//! sqlite://DIR/keygate.db` reads), `token` (an owner's management token), `keys.txt` (every
//! valid key, one a line; the first `--hot` are the hot set), `hot.txt` (the hot set plus 10%
//! invalid lines: malformed, unknown and revoked keys, shuffled) and `seeded` (the marker).
//! When the marker names the same key count, nothing is done: the store is reused.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use chrono::Utc;
use keygate_core::limits::{KeyLimits, RateWindow, WindowLength};
use keygate_core::model::{ApiKey, KeyStatus, Scope};
use keygate_core::{ids, EnvTag, KeyPrefix, PlainKey, ServerSecret, SystemClock};
use keygate_store::{AuditEntry, Store};
use rand::seq::SliceRandom;
use rand::Rng;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection};

/// Revoked keys, written through the store; the hot mix draws its revoked third from them.
const REVOKED: usize = 400;
/// Rows per INSERT statement.
const BATCH: usize = 500;
/// Rows per transaction.
const TX_ROWS: usize = 50_000;

struct Args {
    dir: PathBuf,
    keys: usize,
    hot: usize,
    per_minute: u64,
}

/// One bulk key: what the rows need and what the load generator sends.
struct Generated {
    id: String,
    name: String,
    display: String,
    hash: [u8; 32],
    plain: String,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        dir: PathBuf::new(),
        keys: 1_000_000,
        hot: 10_000,
        per_minute: 1_000_000,
    };
    let mut dir = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--keys" => args.keys = value.parse().context("--keys")?,
            "--hot" => args.hot = value.parse().context("--hot")?,
            "--per-minute" => args.per_minute = value.parse().context("--per-minute")?,
            _ => bail!(
                "unknown argument {flag}; usage: kg-seed --dir DIR [--keys N] [--hot N] [--per-minute N]"
            ),
        }
    }
    args.dir = dir.context("--dir DIR is required")?;
    ensure!(
        args.hot >= 9 && args.hot <= args.keys,
        "--hot must be between 9 and --keys"
    );
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let marker = args.dir.join("seeded");
    let wanted = format!("{} {} {}\n", args.keys, args.hot, args.per_minute);
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        println!("kg-seed: reusing the store in {}", args.dir.display());
        return Ok(());
    }
    let started = Instant::now();
    std::fs::create_dir_all(&args.dir)?;
    for stale in [
        "seeded",
        "keygate.db",
        "keygate.db-wal",
        "keygate.db-shm",
        "keygate.secret",
    ] {
        let _ = std::fs::remove_file(args.dir.join(stale));
    }
    let db_path = args.dir.join("keygate.db");
    let url = format!("sqlite://{}", db_path.display());
    let store = keygate_store::connect(&url).await?;
    let secret = keygate_server::secret::load_or_create(None, &args.dir.join("keygate.secret"))?;
    let prefix = KeyPrefix::parse("kg")?;
    let boot = keygate_server::bootstrap::create_workspace(
        store.as_ref(),
        &secret,
        &SystemClock,
        "bench",
        prefix.clone(),
    )
    .await?;
    std::fs::write(args.dir.join("token"), boot.token.expose())?;
    let owner = &boot.owner.id;
    let ws = &boot.workspace.id;
    let limits = KeyLimits {
        rate_limits: vec![RateWindow {
            limit: args.per_minute,
            window: WindowLength(60),
        }],
        ..KeyLimits::default()
    };

    let (template_id, template) = create_through_store(
        store.as_ref(),
        &secret,
        ws,
        owner,
        "bench-0",
        KeyStatus::Active,
        &limits,
    )
    .await?;
    let mut revoked = Vec::with_capacity(REVOKED);
    for i in 0..REVOKED {
        let name = format!("bench-revoked-{i}");
        let (_, key) = create_through_store(
            store.as_ref(),
            &secret,
            ws,
            owner,
            &name,
            KeyStatus::Revoked,
            &limits,
        )
        .await?;
        revoked.push(key.expose().to_owned());
    }

    let bulk = generate(args.keys - 1, &secret, &prefix);
    println!(
        "kg-seed: generated {} keys in {:.1}s",
        args.keys,
        started.elapsed().as_secs_f64()
    );
    insert_bulk(&db_path, &template_id, &bulk).await?;
    println!(
        "kg-seed: inserted {} keys in {:.1}s",
        args.keys,
        started.elapsed().as_secs_f64()
    );

    let mut keys = Vec::with_capacity(args.keys);
    keys.push(template.expose().to_owned());
    keys.extend(bulk.into_iter().map(|g| g.plain));
    check(store.as_ref(), &secret, &keys, &revoked, &limits).await?;
    write_lines(&args.dir.join("keys.txt"), &keys)?;
    write_lines(
        &args.dir.join("hot.txt"),
        &hot_mix(&keys[..args.hot], &revoked, &prefix),
    )?;
    std::fs::write(&marker, wanted)?;
    println!(
        "kg-seed: {} keys ready in {} after {:.1}s",
        args.keys,
        args.dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn create_through_store(
    store: &dyn Store,
    secret: &ServerSecret,
    workspace_id: &str,
    owner: &str,
    name: &str,
    status: KeyStatus,
    limits: &KeyLimits,
) -> anyhow::Result<(String, PlainKey)> {
    let now = Utc::now();
    let plain = PlainKey::generate(&KeyPrefix::parse("kg")?, &EnvTag::live());
    let key = ApiKey {
        id: ids::new_id("key"),
        workspace_id: workspace_id.to_owned(),
        name: name.to_owned(),
        description: None,
        environment: EnvTag::live(),
        scope: Scope::All,
        permissions: Vec::new(),
        expires_at: None,
        status,
        metadata: serde_json::Map::new(),
        limits: limits.clone(),
        routing_rule_id: None,
        identity_id: None,
        display: plain.display(),
        legacy: false,
        created_by: owner.to_owned(),
        created_at: now,
        updated_at: now,
        last_used_at: None,
        version: 1,
    };
    let audit = AuditEntry {
        id: ids::new_id("aud"),
        workspace_id: workspace_id.to_owned(),
        actor: owner.to_owned(),
        action: "key.create".into(),
        target_type: "key".into(),
        target_id: key.id.clone(),
        changes: serde_json::json!({"seeded_by": "kg-seed"}),
        source_ip: None,
        user_agent: None,
        request_id: String::new(),
        at: now,
    };
    store
        .create_key(&key, &secret.hash_key(&plain), false, &audit)
        .await?;
    Ok((key.id, plain))
}

/// Keys, ids and hashes, on every core (generation reads the OS CSPRNG per character).
fn generate(count: usize, secret: &ServerSecret, prefix: &KeyPrefix) -> Vec<Generated> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = count.div_ceil(threads.max(1));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = t * per_thread;
                let end = count.min(start + per_thread);
                scope.spawn(move || {
                    (start..end)
                        .map(|i| {
                            let plain = PlainKey::generate(prefix, &EnvTag::live());
                            Generated {
                                id: ids::new_id("key"),
                                name: format!("bench-{}", i + 1),
                                display: plain.display(),
                                hash: *secret.hash_key(&plain).as_bytes(),
                                plain: plain.expose().to_owned(),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// `INSERT … SELECT` from the template's rows, `BATCH` rows a statement.
async fn insert_bulk(db: &Path, template_id: &str, bulk: &[Generated]) -> anyhow::Result<()> {
    let options = SqliteConnectOptions::new()
        .filename(db)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off);
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let key_cols = columns(&mut conn, "api_keys").await?;
    let secret_cols = columns(&mut conn, "key_secrets").await?;
    for chunk in bulk.chunks(TX_ROWS) {
        let mut tx = conn.begin().await?;
        for batch in chunk.chunks(BATCH) {
            let keys_sql = copy_sql("api_keys", &key_cols, "id", batch.len(), 3, |c| match c {
                "id" => Some("v.column1"),
                "name" | "name_lower" => Some("v.column2"),
                "display" => Some("v.column3"),
                _ => None,
            });
            let mut q = sqlx::query(&keys_sql);
            for g in batch {
                q = q.bind(&g.id).bind(&g.name).bind(&g.display);
            }
            q.bind(template_id).execute(&mut *tx).await?;

            let secrets_sql = copy_sql(
                "key_secrets",
                &secret_cols,
                "key_id",
                batch.len(),
                2,
                |c| match c {
                    "hash" => Some("v.column1"),
                    "key_id" => Some("v.column2"),
                    _ => None,
                },
            );
            let mut q = sqlx::query(&secrets_sql);
            for g in batch {
                q = q.bind(&g.hash[..]).bind(&g.id);
            }
            q.bind(template_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    sqlx::query("ANALYZE").execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

async fn columns(conn: &mut SqliteConnection, table: &str) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT name FROM pragma_table_info(?)")
        .bind(table)
        .fetch_all(conn)
        .await?;
    let cols = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<Vec<_>, _>>()?;
    ensure!(!cols.is_empty(), "the table {table} does not exist");
    Ok(cols)
}

/// `INSERT INTO table (cols) SELECT <per-row value or the template's column> FROM (VALUES …) v,
/// table t WHERE t.<by> = ?`.
fn copy_sql(
    table: &str,
    cols: &[String],
    by: &str,
    rows: usize,
    per_row: usize,
    per_key: impl Fn(&str) -> Option<&'static str>,
) -> String {
    let select: Vec<String> = cols
        .iter()
        .map(|c| per_key(c).map_or_else(|| format!("t.{c}"), str::to_owned))
        .collect();
    let row = format!("({})", vec!["?"; per_row].join(", "));
    let values = vec![row; rows].join(", ");
    format!(
        "INSERT INTO {table} ({}) SELECT {} FROM (VALUES {values}) AS v, {table} t WHERE t.{by} = ?",
        cols.join(", "),
        select.join(", "),
    )
}

/// Samples read back the way verification reads them.
async fn check(
    store: &dyn Store,
    secret: &ServerSecret,
    keys: &[String],
    revoked: &[String],
    limits: &KeyLimits,
) -> anyhow::Result<()> {
    let mut rng = rand::thread_rng();
    let mut samples: Vec<&String> = (0..20)
        .map(|_| &keys[rng.gen_range(0..keys.len())])
        .collect();
    samples.push(&keys[keys.len() - 1]);
    for key in samples {
        let found = store
            .key_by_hash(&secret.hash_key(&PlainKey::from_untrusted(key.as_str())))
            .await?
            .context("a seeded key is not found by its hash")?;
        ensure!(
            found.key.status == KeyStatus::Active,
            "a seeded key is not active"
        );
        ensure!(&found.key.limits == limits, "a seeded key lost its limits");
    }
    let found = store
        .key_by_hash(&secret.hash_key(&PlainKey::from_untrusted(revoked[0].as_str())))
        .await?
        .context("a revoked key is not found")?;
    ensure!(
        found.key.status == KeyStatus::Revoked,
        "a revoked key is not revoked"
    );
    Ok(())
}

/// The hot set and one invalid line for every nine valid ones, shuffled.
fn hot_mix(hot: &[String], revoked: &[String], prefix: &KeyPrefix) -> Vec<String> {
    let invalid = hot.len() / 9;
    let mut mix: Vec<String> = hot.to_vec();
    for i in 0..invalid {
        mix.push(match i % 3 {
            // A changed checksum character: rejected before any lookup.
            0 => {
                let mut key = hot[i].clone();
                let last = key.pop().unwrap_or('0');
                key.push(if last == 'A' { 'B' } else { 'A' });
                key
            }
            // Well formed, never stored.
            1 => PlainKey::generate(prefix, &EnvTag::live())
                .expose()
                .to_owned(),
            _ => revoked[i % revoked.len()].clone(),
        });
    }
    mix.shuffle(&mut rand::thread_rng());
    mix
}

fn write_lines(path: &Path, lines: &[String]) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for line in lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
