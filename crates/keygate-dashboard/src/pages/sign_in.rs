//! The sign-in pages: a management token, or the button a one-time link opens.

use maud::{html, Markup};

use super::layout::page;

pub fn form_page(error: Option<&str>, signed_out: bool) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if signed_out {
                (super::layout::flash("You are signed out."))
            }
            @if let Some(error) = error {
                p.error role="alert" id="sign-in-error" { (error) }
            }
            form.card method="post" action="/dashboard/sign-in" {
                label for="token" { "Management token" }
                input #token type="password" name="token" required autocomplete="off"
                    spellcheck="false" placeholder="kgm_mgmt_…"
                    aria-describedby=[error.map(|_| "sign-in-error")];
                p.hint { "Paste the token printed by " code { "keygate serve" } " on first start, or one an owner created for you. Or open the one-time sign-in link it printed." }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// What a valid one-time link opens: one button, so prefetching the link uses nothing.
pub fn link_page(secret: &str) -> Markup {
    page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in with your link" }
            form.card method="post" action="/dashboard/sign-in/link" {
                input type="hidden" name="secret" value=(secret);
                p { "This link signs you in once, and expires 15 minutes after it was made." }
                button type="submit" { "Sign in" }
            }
        },
    )
}
