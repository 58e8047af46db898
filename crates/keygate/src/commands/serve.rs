//! `keygate serve`: start the server, show the first owner's token once when the store was
//! empty, and shut down gracefully on SIGINT/SIGTERM.

use anyhow::Context;
use keygate_server::{prepare, serve_with, system_clock};
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    let mut settings = args.database.settings()?;
    settings.listen = args.listen;
    settings.redis_url = args.redis_url;
    settings.redis_namespace = args.redis_namespace;
    settings.webhooks_allow_loopback = args.webhooks_allow_loopback;
    settings.usage.request_log_retention = args.usage_retention;
    settings.usage.enabled = args.usage_recording == "on";
    if let Some(path) = &args.config {
        // Provider credentials are named in the file and read from the environment here, so
        // the file itself can be committed without secrets.
        let config = keygate_server::gateway::GatewayConfig::from_file(path, &|name| {
            std::env::var(name).ok()
        })
        .with_context(|| format!("gateway config {}", path.display()))?;
        settings.gateway = Some(config);
    }

    let (state, bootstrapped) = prepare(&settings, system_clock()).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = state.store.backend(), "keygate listening");
    // Written as one block, and a closed stdout is ignored: a server must not die because
    // whoever started it stopped reading (println! would panic on a broken pipe).
    let mut banner = format!("Keygate is listening on http://{addr}\n");
    if let Some(b) = bootstrapped {
        banner.push_str(&format!(
            "\nCreated workspace {} with an owner.\n\
             Owner management token (shown once, store it now):\n\n    {}\n\n\
             Use it as `Authorization: Bearer <token>`, e.g.:\n    \
             curl -H \"Authorization: Bearer $TOKEN\" http://{addr}/v1/keys\n",
            b.workspace.id,
            b.token.expose()
        ));
        // The link's secret is printed here once; only its hash is stored.
        let link = keygate_dashboard::issue_sign_in_link(&state, &b.owner)
            .await
            .context("creating the owner's sign-in link")?;
        banner.push_str(&format!(
            "\nDashboard: http://{addr}/dashboard\n\
             One-time sign-in link for the owner (expires in {} minutes, works once):\n\n    \
             http://{addr}{}\n",
            keygate_dashboard::SIGN_IN_LINK_LIFETIME.num_minutes(),
            link.path()
        ));
    } else {
        banner.push_str(
            "Use an owner's management token (from the first start or `keygate bootstrap`); \
             sign in to the dashboard at /dashboard with it.\n",
        );
    }
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(banner.as_bytes());
        let _ = stdout.flush();
    }
    let dashboard = keygate_dashboard::router(keygate_dashboard::DashboardSettings {
        trust_proxy: args.trust_proxy,
        ..Default::default()
    });
    serve_with(listener, state, dashboard, shutdown_signal()).await?;
    tracing::info!("keygate stopped");
    Ok(())
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr; stdout carries only the banner (address and first token).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
