//! `kg-pace`: an open-loop load generator at a fixed request rate, for latency at a given load
//! (what wrk2 does; Debian ships only wrk, which measures closed-loop throughput, and oha sends
//! one fixed body, while a cold-cache run needs a different key in every request).
//!
//! Request `i` is due at `start + i / rate`, whatever happened to the requests before it. Each
//! of `--connections` connections takes the next due request. Latency is counted from the
//! moment the request was due when its connection was still busy then — so a server that
//! stalls is charged for the queue it causes (no coordinated omission) — and from the actual
//! send when the connection was idle, so the generator's own wake-up jitter is not charged to
//! the server. A pacer thread sleeps to each due time (nanosleep, not the 1 ms timer wheel, so
//! arrivals are smooth rather than bursts) and releases the request to the connections'
//! single-threaded runtime; nothing spins, so the generator's core is busy only with the load.
//!
//! Usage: `kg-pace --addr 127.0.0.1:8080 --path /v1/keys/verify --keys FILE [--token T]
//! --rate R --duration S [--warmup S] [--connections C]`. Each request is a POST with the body
//! `{"key":"<a random line of FILE>"}`. Prints one JSON line with the rate asked for, the rate
//! achieved, counts of 200s, other statuses and errors, and p50/p99/p99.9/max in microseconds.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::TcpStream;
use tokio::sync::Semaphore;

struct Args {
    addr: SocketAddr,
    path: String,
    keys: String,
    token: Option<String>,
    rate: f64,
    duration: f64,
    warmup: f64,
    connections: usize,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u64>,
    ok: u64,
    non_200: u64,
    errors: u64,
}

const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        path: "/v1/keys/verify".into(),
        keys: String::new(),
        token: None,
        rate: 0.0,
        duration: 10.0,
        warmup: 2.0,
        connections: 32,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => args.addr = value.parse().context("--addr")?,
            "--path" => args.path = value,
            "--keys" => args.keys = value,
            "--token" => args.token = Some(value),
            "--rate" => args.rate = value.parse().context("--rate")?,
            "--duration" => args.duration = value.parse().context("--duration")?,
            "--warmup" => args.warmup = value.parse().context("--warmup")?,
            "--connections" => args.connections = value.parse().context("--connections")?,
            _ => bail!("unknown argument {flag}"),
        }
    }
    ensure!(args.rate > 0.0, "--rate must be positive");
    ensure!(!args.keys.is_empty(), "--keys FILE is required");
    ensure!(
        args.duration > 0.0 && args.duration <= 600.0,
        "--duration is 0 to 600 seconds"
    );
    ensure!(args.connections > 0, "--connections must be positive");
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let keys: Vec<String> = std::fs::read_to_string(&args.keys)
        .with_context(|| format!("reading {}", args.keys))?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    ensure!(!keys.is_empty(), "{} has no keys", args.keys);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let limit = Duration::from_secs_f64(args.warmup + args.duration + 15.0);
    let tallies = runtime.block_on(async {
        tokio::time::timeout(limit, run(&args, Rc::new(keys)))
            .await
            .context("the run did not finish in time")?
    })?;

    let mut all = Tally::default();
    for t in tallies {
        all.latencies_ns.extend(t.latencies_ns);
        all.ok += t.ok;
        all.non_200 += t.non_200;
        all.errors += t.errors;
    }
    all.latencies_ns.sort_unstable();
    let pct = |p: f64| -> f64 {
        let v = &all.latencies_ns;
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1] as f64 / 1000.0
    };
    let recorded = all.latencies_ns.len();
    println!(
        "{{\"rate\":{},\"recorded\":{},\"ok\":{},\"non_200\":{},\"errors\":{},\"achieved_rps\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1},\"p999_us\":{:.1},\"max_us\":{:.1}}}",
        args.rate,
        recorded,
        all.ok,
        all.non_200,
        all.errors,
        recorded as f64 / args.duration,
        pct(50.0),
        pct(99.0),
        pct(99.9),
        pct(100.0),
    );
    Ok(())
}

async fn run(args: &Args, keys: Rc<Vec<String>>) -> anyhow::Result<Vec<Tally>> {
    let rate = args.rate;
    let total = ((args.warmup + args.duration) * rate).floor() as u64;
    let warmup_count = (args.warmup * rate).floor() as u64;
    let due_at = move |start: Instant, i: u64| start + Duration::from_secs_f64(i as f64 / rate);
    let next = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(Semaphore::new(0));
    let start = Instant::now() + Duration::from_millis(50);

    // The pacer: a thread that sleeps to each due time and then releases that many requests,
    // so nothing spins and the connections' runtime wakes only when there is work.
    let pacer = {
        let permits = permits.clone();
        let connections = args.connections;
        std::thread::spawn(move || {
            let mut issued = 0u64;
            while issued < total {
                let now = Instant::now();
                let due = if now < start {
                    0
                } else {
                    (((now - start).as_secs_f64() * rate).floor() as u64 + 1).min(total)
                };
                if due > issued {
                    permits.add_permits((due - issued) as usize);
                    issued = due;
                } else {
                    std::thread::sleep(due_at(start, issued).saturating_duration_since(now));
                }
            }
            // One more for each connection, which then finds nothing left and stops.
            permits.add_permits(connections);
        })
    };

    let local = tokio::task::LocalSet::new();
    let mut handles = Vec::new();
    for c in 0..args.connections {
        let next = next.clone();
        let permits = permits.clone();
        let keys = keys.clone();
        let head = request_head(args);
        let addr = args.addr;
        handles.push(local.spawn_local(async move {
            let mut tally = Tally::default();
            let mut rng =
                0x9E37_79B9_7F4A_7C15u64 ^ (c as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED69);
            let mut conn: Option<TcpStream> = None;
            let mut buf = Vec::with_capacity(4096);
            let mut request = Vec::with_capacity(512);
            let mut last_done = Instant::now();
            loop {
                match permits.acquire().await {
                    Ok(permit) => permit.forget(),
                    Err(_) => break,
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let due = due_at(start, i);
                let sent = Instant::now();
                // Busy past the due time: the wait for the connection is the server's doing.
                let from = if last_done > due { due } else { sent };

                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let key = &keys[(rng % keys.len() as u64) as usize];
                let body = format!("{{\"key\":\"{key}\"}}");
                request.clear();
                request.extend_from_slice(&head);
                request.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                request.extend_from_slice(body.as_bytes());

                let result = tokio::time::timeout(
                    RESPONSE_TIMEOUT,
                    exchange(&mut conn, addr, &request, &mut buf),
                )
                .await;
                let done = Instant::now();
                last_done = done;
                match result {
                    Ok(Ok(status)) => {
                        if status == 200 {
                            tally.ok += 1;
                        } else {
                            tally.non_200 += 1;
                        }
                        if i >= warmup_count {
                            tally.latencies_ns.push((done - from).as_nanos() as u64);
                        }
                    }
                    _ => {
                        tally.errors += 1;
                        conn = None;
                    }
                }
            }
            tally
        }));
    }
    let tallies = local
        .run_until(async move {
            let mut tallies = Vec::new();
            for h in handles {
                tallies.push(h.await?);
            }
            Ok::<_, anyhow::Error>(tallies)
        })
        .await?;
    pacer
        .join()
        .map_err(|_| anyhow::anyhow!("the pacer thread panicked"))?;
    Ok(tallies)
}

fn request_head(args: &Args) -> Vec<u8> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n",
        args.path, args.addr
    );
    if let Some(token) = &args.token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.into_bytes()
}

/// Sends one request on the connection (opening it if needed) and reads one response whose
/// length is given by `Content-Length`. Returns the status code.
async fn exchange(
    conn: &mut Option<TcpStream>,
    addr: SocketAddr,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> anyhow::Result<u16> {
    if conn.is_none() {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        *conn = Some(stream);
    }
    let stream = conn.as_mut().context("no connection")?;
    stream.write_all(request).await?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("no status code")?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())
                        .flatten()
                })
                .context("the response has no Content-Length")?;
            let close = head
                .lines()
                .any(|l| l.eq_ignore_ascii_case("connection: close"));
            let wanted = end + 4 + length;
            while buf.len() < wanted {
                let n = stream.read(&mut chunk).await?;
                ensure!(n > 0, "connection closed mid-body");
                buf.extend_from_slice(&chunk[..n]);
            }
            if close {
                *conn = None;
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        ensure!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
