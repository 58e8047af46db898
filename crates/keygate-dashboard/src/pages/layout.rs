//! The one layout every page uses, and what several pages show the same way (times).

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use crate::session::SignedIn;

/// A whole page: head, the header with the member and sign-out, and `body` in `<main>`.
pub fn page(title: &str, signed_in: Option<&SignedIn>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Keygate" }
                link rel="stylesheet" href="/dashboard/static/dashboard.css";
                script src="/dashboard/static/dashboard.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/dashboard" { "Keygate" }
                    @if let Some(signed_in) = signed_in {
                        nav aria-label="Main" {
                            a href="/dashboard/keys" { "API keys" }
                            a href="/dashboard/identities" { "Identities" }
                        }
                        div.who {
                            span { (signed_in.caller.member.name) " · " (signed_in.caller.member.role.as_str()) }
                            form method="post" action="/dashboard/sign-out" {
                                input type="hidden" name="csrf" value=(signed_in.session.csrf_token);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A page that only says what went wrong and where to go.
pub fn error_page(title: &str, message: &str) -> Markup {
    page(
        title,
        None,
        html! {
            h1 { (title) }
            p.error role="alert" { (message) }
            p { a href="/dashboard" { "Back to the dashboard" } }
        },
    )
}

/// A flash message naming what just happened.
pub fn flash(message: &str) -> Markup {
    html! { p.flash role="status" { (message) } }
}

/// "2 hours ago", "in 3 days", with the exact UTC time on hover and for machines.
pub fn time(at: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) title=(at.format("%Y-%m-%d %H:%M UTC")) { (relative(at, now)) }
    }
}

pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    let (past, seconds) = (seconds >= 0, seconds.unsigned_abs());
    let amount = |n: u64, unit: &str| {
        let unit = if n == 1 {
            unit.to_owned()
        } else {
            format!("{unit}s")
        };
        if past {
            format!("{n} {unit} ago")
        } else {
            format!("in {n} {unit}")
        }
    };
    match seconds {
        0..=59 => {
            if past {
                "just now".into()
            } else {
                "in under a minute".into()
            }
        }
        60..=3_599 => amount(seconds / 60, "minute"),
        3_600..=86_399 => amount(seconds / 3_600, "hour"),
        86_400..=5_183_999 => amount(seconds / 86_400, "day"),
        _ => amount(seconds / 2_592_000, "month"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn times_read_like_a_person_says_them() {
        let now = Utc::now();
        assert_eq!(relative(now - Duration::hours(2), now), "2 hours ago");
        assert_eq!(relative(now - Duration::seconds(5), now), "just now");
        assert_eq!(relative(now + Duration::days(3), now), "in 3 days");
        assert_eq!(relative(now - Duration::minutes(1), now), "1 minute ago");
    }
}
