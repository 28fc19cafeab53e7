//! Where a webhook may go: an endpoint URL is checked when it is saved, and
//! every connection goes through [`GuardedResolver`], which drops the
//! private addresses a name resolves to (unless their subnet is allowed)
//! before the client connects to what is left, so a name that resolves to
//! a public address when it is saved and to a private one later (DNS
//! rebinding) still reaches nothing private.

use kelviq_core::webhooks::{may_reach, Subnet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The longest endpoint URL.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL cannot be an endpoint.
pub fn check_url(text: &str, allowed: &[Subnet]) -> Result<url::Url, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("Enter a URL of at most {MAX_URL_LEN} characters."));
    }
    if text.chars().any(char::is_control) {
        return Err("Control characters are not allowed.".into());
    }
    let url = url::Url::parse(text).map_err(|_| "Enter a valid URL.".to_string())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("A URL with credentials is not allowed; authenticate the request by its signature.".into());
    }
    let host = url.host().ok_or_else(|| "Enter a URL with a host.".to_string())?;
    let literal: Option<IpAddr> = match host {
        url::Host::Ipv4(ip) => Some(ip.into()),
        url::Host::Ipv6(ip) => Some(ip.into()),
        url::Host::Domain(_) => None,
    };
    if let Some(ip) = literal {
        if !may_reach(ip, allowed) {
            return Err(format!("{ip} is a private address; webhooks may not reach it."));
        }
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if literal.is_some_and(|ip| allowed.iter().any(|s| s.contains(ip))) => Ok(url),
        "http" if literal.is_none() && !allowed.is_empty() => Ok(url),
        "http" => Err("Use an https:// URL (plain http is only for the subnets the configuration allows).".into()),
        _ => Err("Use an https:// URL.".into()),
    }
}

/// Resolves names for the webhook client, keeping only the addresses a
/// webhook may reach.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allowed: Arc<Vec<Subnet>>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let reachable: Vec<SocketAddr> = found.iter().copied().filter(|a| may_reach(a.ip(), &allowed)).collect();
            if reachable.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> = if found.is_empty() {
                    format!("{host} does not resolve").into()
                } else {
                    format!("{host} resolves only to private addresses; webhooks may not reach them").into()
                };
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(reachable.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether a URL names an address literally and that address is refused
/// (names are checked by the resolver at connect time).
pub fn refused_literal(url: &url::Url, allowed: &[Subnet]) -> Option<IpAddr> {
    let ip: IpAddr = match url.host()? {
        url::Host::Ipv4(ip) => ip.into(),
        url::Host::Ipv6(ip) => ip.into(),
        url::Host::Domain(_) => return None,
    };
    (!may_reach(ip, allowed)).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let none: &[Subnet] = &[];
        let local = [Subnet::parse("127.0.0.0/8").unwrap()];
        assert!(check_url("https://example.com/hook", none).is_ok());
        assert!(check_url("http://example.com/hook", none).is_err(), "http only for allowed subnets");
        assert!(check_url("https://127.0.0.1/hook", none).is_err());
        assert!(check_url("https://[::ffff:10.0.0.1]/hook", none).is_err());
        assert!(check_url("http://127.0.0.1:9000/hook", &local).is_ok());
        assert!(check_url("http://10.0.0.1/hook", &local).is_err());
        assert!(check_url("https://user:pw@example.com/", none).is_err());
        assert!(check_url("ftp://example.com/", none).is_err());
        assert!(check_url("not a url", none).is_err());
    }
}
