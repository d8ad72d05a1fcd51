//! `infinistream control-plane`: the reference control plane as a process: started, announced
//! (a banner for people, a JSON event for machines), stopped gracefully on SIGINT or SIGTERM.
//!
//! Owns: that process life. Does not own: the control plane itself
//! (`infinistream-control-plane`).

use std::net::SocketAddr;

use infinistream::agent::Signals;
use infinistream::logging;
use infinistream_control_plane::{ControlPlaneConfig, ControlPlaneError, start_in_process};

/// Runs the control plane HTTP server until SIGINT or SIGTERM, then stops gracefully; `format`
/// decides between a banner for people and a JSON "started" event.
pub fn run_blocking(
    config: ControlPlaneConfig,
    format: logging::LogFormat,
) -> Result<(), ControlPlaneError> {
    actix_rt::System::new().block_on(async move {
        let mut signals = Signals::listen();
        let running = start_in_process(config.clone()).await?;
        announce(&config, running.local_addr(), format);
        signals.next().await;
        tracing::info!("infinistream control plane stopping");
        running.stop().await;
        Ok(())
    })
}

fn announce(config: &ControlPlaneConfig, addr: SocketAddr, format: logging::LogFormat) {
    let url = logging::url("http", &addr.ip().to_string(), addr.port());
    let data_dir = match &config.data_dir {
        Some(dir) => dir.display().to_string(),
        None => "in memory (lost on exit)".to_owned(),
    };
    match format {
        logging::LogFormat::Text => print!(
            "{}",
            logging::Banner::new(format!(
                "InfiniStream {} control plane",
                env!("CARGO_PKG_VERSION")
            ))
            .row("agents", format!("--control-plane-url {url}"))
            .row("group", config.group_id.as_str())
            .row("data", data_dir)
            .footer("Ctrl-C stops it.")
            .render()
        ),
        logging::LogFormat::Json => tracing::info!(
            listen = %addr,
            url = %url,
            group_id = %config.group_id,
            data_dir = %data_dir,
            version = env!("CARGO_PKG_VERSION"),
            "infinistream control plane started"
        ),
    }
}
