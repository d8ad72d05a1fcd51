//! The few lines a person at a terminal reads first: what runs, where to connect, where the data
//! is. Printed instead of the JSON "started" event when the output is for people.
//!
//! Owns the banner layout and how a bind host becomes a host to connect to. Does not own the
//! values shown (the agent and the playground pass them).

use std::net::IpAddr;

/// A titled list of `label  value` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    title: String,
    rows: Vec<(&'static str, String)>,
    footer: Option<String>,
}

impl Banner {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            rows: Vec::new(),
            footer: None,
        }
    }

    pub fn row(mut self, label: &'static str, value: impl Into<String>) -> Self {
        self.rows.push((label, value.into()));
        self
    }

    pub fn footer(mut self, footer: impl Into<String>) -> Self {
        self.footer = Some(footer.into());
        self
    }

    /// The banner, each row's value aligned, ending with a blank line.
    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let mut out = format!("{}\n", self.title);
        for (label, value) in &self.rows {
            out.push_str(&format!("  {label:<width$}  {value}\n"));
        }
        if let Some(footer) = &self.footer {
            out.push_str(&format!("  {footer}\n"));
        }
        out.push('\n');
        out
    }
}

/// The host a client on this machine connects to for a listener bound to `bind_host`: the
/// loopback address for a wildcard bind (`0.0.0.0`, `::`), the host itself otherwise, with IPv6
/// literals in brackets.
pub fn connect_host(bind_host: &str) -> String {
    let host = bind_host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => "[::1]".to_owned(),
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        Ok(IpAddr::V4(ip)) => ip.to_string(),
        Err(_) if host.is_empty() => "127.0.0.1".to_owned(),
        Err(_) => host.to_owned(),
    }
}

/// `scheme://host:port` for a listener bound to `bind_host`.
pub fn url(scheme: &str, bind_host: &str, port: u16) -> String {
    format!("{scheme}://{}:{port}", connect_host(bind_host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_connect_on_loopback_and_real_hosts_are_kept() {
        assert_eq!(url("nats", "0.0.0.0", 4222), "nats://127.0.0.1:4222");
        assert_eq!(url("nats", "127.0.0.2", 4222), "nats://127.0.0.2:4222");
        assert_eq!(url("nats", "::", 4222), "nats://[::1]:4222");
        assert_eq!(url("nats", "[::]", 4222), "nats://[::1]:4222");
        assert_eq!(url("nats", "::1", 1), "nats://[::1]:1");
        assert_eq!(url("http", "db.internal", 8222), "http://db.internal:8222");
        assert_eq!(url("http", "", 8222), "http://127.0.0.1:8222");
    }

    #[test]
    fn rows_align() {
        let text = Banner::new("InfiniStream 0.1.0 playground")
            .row("NATS", "nats://127.0.0.1:4222")
            .row("monitoring", "http://127.0.0.1:8222")
            .footer("Ctrl-C stops it.")
            .render();
        assert_eq!(
            text,
            "InfiniStream 0.1.0 playground\n  NATS        nats://127.0.0.1:4222\n  monitoring  http://127.0.0.1:8222\n  Ctrl-C stops it.\n\n"
        );
    }
}
