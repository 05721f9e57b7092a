//! National clouds: which Graph hosts and which token hosts belong together. A client secret
//! or assertion goes to `token_url` and the token it buys to `graph_url`; both must be in the
//! same cloud, so a mistyped or planted URL cannot send them anywhere else.
//!
//! Hosts from <https://learn.microsoft.com/graph/deployments> ("App registration and token
//! service root endpoints" and "Microsoft Graph and Graph Explorer service root endpoints").
//! A loopback host (the emulator) is a cloud of its own.

use std::net::IpAddr;

/// A Microsoft cloud, or the local machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// The global service.
    Global,
    /// Microsoft Cloud for US Government (L4 and L5/DoD).
    UsGovernment,
    /// Microsoft Azure and Microsoft 365 operated by 21Vianet in China.
    China,
    /// 127.0.0.0/8, ::1 or `localhost`: an emulated tenant on this machine.
    Loopback,
}

impl Cloud {
    /// How the cloud is named in messages.
    pub fn name(self) -> &'static str {
        match self {
            Cloud::Global => "the global cloud",
            Cloud::UsGovernment => "the US Government cloud",
            Cloud::China => "the China (21Vianet) cloud",
            Cloud::Loopback => "loopback (a local emulator)",
        }
    }

    /// The cloud whose Microsoft Graph service `url` is, if any.
    pub fn of_graph(url: &reqwest::Url) -> Option<Cloud> {
        loopback(url).or_else(|| match host(url)?.as_str() {
            "graph.microsoft.com" => Some(Cloud::Global),
            "graph.microsoft.us" | "dod-graph.microsoft.us" => Some(Cloud::UsGovernment),
            "microsoftgraph.chinacloudapi.cn" => Some(Cloud::China),
            _ => None,
        })
    }

    /// The cloud whose Microsoft Entra token service `url` is, if any.
    pub fn of_token_service(url: &reqwest::Url) -> Option<Cloud> {
        loopback(url).or_else(|| match host(url)?.as_str() {
            "login.microsoftonline.com" => Some(Cloud::Global),
            "login.microsoftonline.us" => Some(Cloud::UsGovernment),
            "login.chinacloudapi.cn" => Some(Cloud::China),
            _ => None,
        })
    }
}

/// The host in lower case, without a trailing dot.
fn host(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?.trim_end_matches('.');
    Some(host.to_ascii_lowercase())
}

fn loopback(url: &reqwest::Url) -> Option<Cloud> {
    let host = host(url)?;
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    let is_loopback = host == "localhost" || ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    is_loopback.then_some(Cloud::Loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn graph_and_token_hosts_of_each_cloud() {
        let pairs = [
            (
                "https://graph.microsoft.com/v1.0",
                "https://login.microsoftonline.com/t/oauth2/v2.0/token",
                Cloud::Global,
            ),
            (
                "https://graph.microsoft.us/v1.0",
                "https://login.microsoftonline.us/t/oauth2/v2.0/token",
                Cloud::UsGovernment,
            ),
            (
                "https://dod-graph.microsoft.us/v1.0",
                "https://login.microsoftonline.us/t/oauth2/v2.0/token",
                Cloud::UsGovernment,
            ),
            (
                "https://microsoftgraph.chinacloudapi.cn/v1.0",
                "https://login.chinacloudapi.cn/t/oauth2/v2.0/token",
                Cloud::China,
            ),
            (
                "http://127.0.0.1:8080/v1.0",
                "http://localhost:9/t/oauth2/v2.0/token",
                Cloud::Loopback,
            ),
            ("http://[::1]:1/v1.0", "http://127.0.0.2/t", Cloud::Loopback),
        ];
        for (graph, token, cloud) in pairs {
            assert_eq!(Cloud::of_graph(&url(graph)), Some(cloud), "{graph}");
            assert_eq!(Cloud::of_token_service(&url(token)), Some(cloud), "{token}");
        }
        assert_eq!(
            Cloud::of_graph(&url("https://GRAPH.Microsoft.com./v1.0")),
            Some(Cloud::Global)
        );
    }

    #[test]
    fn other_hosts_belong_to_no_cloud() {
        for other in [
            "https://graph.microsoft.com.evil.example/v1.0",
            "https://evilgraph.microsoft.com/v1.0",
            "https://login.microsoftonline.com/t",
            "https://10.0.0.1/v1.0",
        ] {
            assert_eq!(Cloud::of_graph(&url(other)), None, "{other}");
        }
        assert_eq!(
            Cloud::of_token_service(&url("https://graph.microsoft.com/x")),
            None
        );
    }
}
