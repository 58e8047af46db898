//! Everything the CLI prints: colour, tables, relative times, bars, prompts.
//!
//! Colour is decided once per stream: only on a terminal, never when `NO_COLOR` is set or
//! `TERM=dumb`, so piped output and CI logs stay plain text a script can parse.

use std::io::{BufRead, IsTerminal, Write};

use chrono::{DateTime, Utc};
use comfy_table::{presets, ContentArrangement, Table};
use serde_json::Value;

use crate::error::CliError;

#[derive(Debug, Clone, Copy)]
pub enum Tone {
    Good,
    Warn,
    Bad,
    Dim,
    Bold,
}

/// Whether a stream may carry ANSI colour.
fn colour_allowed(is_terminal: bool) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    is_terminal && !no_color && !dumb
}

/// How this invocation prints: JSON for scripts or text for people, with or without colour.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    colour_out: bool,
    colour_err: bool,
    stdout_terminal: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        let stdout_terminal = std::io::stdout().is_terminal();
        Output {
            json,
            colour_out: colour_allowed(stdout_terminal),
            colour_err: colour_allowed(std::io::stderr().is_terminal()),
            stdout_terminal,
        }
    }

    /// Text without colour whatever the streams are, for tests of rendered output.
    #[cfg(test)]
    pub fn plain() -> Self {
        Output {
            json: false,
            colour_out: false,
            colour_err: false,
            stdout_terminal: false,
        }
    }

    pub fn paint(&self, tone: Tone, text: &str) -> String {
        paint(self.colour_out, tone, text)
    }

    pub fn paint_err(&self, tone: Tone, text: &str) -> String {
        paint(self.colour_err, tone, text)
    }

    pub fn print_json(&self, value: &Value) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(_) => println!("{value}"),
        }
    }

    /// A table: bordered on a terminal, plain whitespace-separated columns in a pipe.
    pub fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        if self.stdout_terminal {
            table
                .load_preset(presets::UTF8_HORIZONTAL_ONLY)
                .set_content_arrangement(ContentArrangement::Dynamic);
        } else {
            table.load_preset(presets::NOTHING);
        }
        table.set_header(header.iter().map(|h| self.paint(Tone::Bold, h)));
        table
    }

    /// Success line on stdout, e.g. "✓ Disabled key …".
    pub fn done(&self, message: &str) {
        println!("{} {message}", self.paint(Tone::Good, "✓"));
    }

    /// A warning on stderr, so it reaches the person even when stdout is piped.
    pub fn warn(&self, message: &str) {
        eprintln!("{} {message}", self.paint_err(Tone::Warn, "!"));
    }

    pub fn error(&self, error: &CliError) {
        if let CliError::Unreadable { answer, .. } = error {
            self.print_json(answer);
        }
        if self.json {
            if let Some(value) = error.to_json() {
                eprintln!("{value}");
            }
            return;
        }
        if let Some((message, hint)) = error.describe() {
            eprintln!("{} {message}", self.paint_err(Tone::Bad, "error:"));
            if let Some(hint) = hint {
                eprintln!("{} {hint}", self.paint_err(Tone::Dim, "hint:"));
            }
        }
    }
}

fn paint(enabled: bool, tone: Tone, text: &str) -> String {
    if !enabled {
        return text.to_string();
    }
    let code = match tone {
        Tone::Good => "32",
        Tone::Warn => "33",
        Tone::Bad => "31",
        Tone::Dim => "2",
        Tone::Bold => "1",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// "2 hours ago", "in 3 days", "just now": what a person reads at a glance in a list.
pub fn relative_time(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds();
    let (abs, future) = (secs.unsigned_abs(), secs < 0);
    if abs < 45 {
        return "just now".to_string();
    }
    let (n, unit) = match abs {
        s if s < 90 => (1, "minute"),
        s if s < 3_600 => (((s + 30) / 60).min(59), "minute"),
        s if s < 5_400 => (1, "hour"),
        s if s < 86_400 => ((s + 1_800) / 3_600, "hour"),
        s if s < 2 * 86_400 => (1, "day"),
        s if s < 30 * 86_400 => ((s + 43_200) / 86_400, "day"),
        s if s < 365 * 86_400 => (((s + 15 * 86_400) / (30 * 86_400)).clamp(1, 12), "month"),
        s => ((s / (365 * 86_400)).max(1), "year"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{plural}")
    } else {
        format!("{n} {unit}{plural} ago")
    }
}

/// A time as a relative time, or `fallback` when there is none.
pub fn relative(time: Option<DateTime<Utc>>, fallback: &str) -> String {
    time.map_or_else(|| fallback.to_string(), |t| relative_time(t, Utc::now()))
}

/// A value's name on the wire (`"daily"`, `"key.create"`): what the server sent.
/// Each limit in a line of its own words: `100 requests / 1m`, `$1.50 monthly`, ….
pub fn limit_parts(limits: &keygate_api::KeyLimits) -> Vec<String> {
    let mut parts = Vec::new();
    for w in &limits.rate_limits {
        parts.push(format!("{} requests / {}", w.limit, w.window));
    }
    if let Some(t) = &limits.token_limit {
        parts.push(format!("{} tokens {}", t.limit, wire_name(&t.reset)));
    }
    if let Some(c) = &limits.cost_limit {
        parts.push(format!("${} {}", c.limit, wire_name(&c.reset)));
    }
    if let Some(cap) = limits.daily_spend_cap {
        parts.push(format!("${cap} per day spend cap"));
    }
    parts
}

pub fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A bar of `width` cells at most, in eighths of a cell so small differences still show.
pub fn bar(value: u64, max: u64, width: usize) -> String {
    if max == 0 || value == 0 {
        return String::new();
    }
    const PARTS: [&str; 8] = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"];
    let eighths = ((value as u128 * width as u128 * 8) / max as u128).max(1) as usize;
    let mut bar = "█".repeat(eighths / 8);
    bar.push_str(PARTS[eighths % 8]);
    bar
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|group| std::str::from_utf8(group).unwrap_or(""))
        .collect();
    groups.join(",")
}

/// Whether questions can be asked: both ends of the conversation are a terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks on stderr (stdout may be a pipe or JSON) and reads one line from stdin.
pub fn prompt(question: &str) -> Result<String, CliError> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line)?;
    if read == 0 {
        return Err(CliError::failed(
            "no answer (end of input); nothing was done",
        ));
    }
    Ok(line.trim().to_string())
}

/// y/N question: anything but yes is no.
pub fn confirm(question: &str) -> Result<bool, CliError> {
    let answer = prompt(&format!("{question} [y/N] "))?;
    Ok(matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc::now();
        assert_eq!(relative_time(now, now), "just now");
        assert_eq!(relative_time(now - Duration::hours(2), now), "2 hours ago");
        assert_eq!(
            relative_time(now - Duration::minutes(1), now),
            "1 minute ago"
        );
        assert_eq!(relative_time(now - Duration::days(3), now), "3 days ago");
        assert_eq!(relative_time(now + Duration::days(90), now), "in 3 months");
        assert_eq!(relative_time(now - Duration::days(800), now), "2 years ago");
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        assert_eq!(bar(10, 10, 4), "████");
        assert_eq!(bar(5, 10, 4), "██");
        assert_eq!(bar(0, 10, 4), "");
        assert_eq!(bar(1, 1000, 4), "▏");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
