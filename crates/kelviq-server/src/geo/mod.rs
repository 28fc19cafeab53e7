//! Where a request comes from: the client's address (behind trusted
//! proxies), its country (a trusted header, else the IP database) and what
//! the operator's network lists say of it (VPN, Tor, proxy, relay). The
//! files are read at start and again when they change, without a restart.

use crate::config::Config;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use kelviq_core::geo::{client_address, IpCountries, IpSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// What the files said when last read.
#[derive(Debug, Default)]
pub struct GeoData {
    pub countries: IpCountries,
    pub vpn: IpSet,
    pub tor: IpSet,
    pub proxy: IpSet,
    pub relay: IpSet,
}

/// The files of the configuration, each with the time it was last read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Countries,
    Vpn,
    Tor,
    Proxy,
    Relay,
}

/// The geo resolver of a process.
pub struct Geo {
    data: RwLock<Arc<GeoData>>,
    files: Vec<(Source, PathBuf)>,
    seen: RwLock<Vec<Option<SystemTime>>>,
    trusted: IpSet,
    country_header: Option<axum::http::HeaderName>,
}

fn modified(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Geo {
    /// Reads every configured file; an unreadable one is an error.
    pub fn load(config: &Config) -> anyhow::Result<Geo> {
        let trusted =
            IpSet::parse(&config.trusted_proxies.join("\n")).map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))?;
        let country_header = match config.geo_country_header.as_deref().map(str::trim).filter(|h| !h.is_empty()) {
            Some(h) => Some(
                axum::http::HeaderName::try_from(h.to_ascii_lowercase())
                    .map_err(|_| anyhow::anyhow!("geo_country_header {h:?} is not a header name"))?,
            ),
            None => None,
        };
        let mut files = Vec::new();
        for (source, path) in [
            (Source::Countries, &config.geoip_file),
            (Source::Countries, &config.geoip6_file),
            (Source::Vpn, &config.vpn_networks_file),
            (Source::Tor, &config.tor_networks_file),
            (Source::Proxy, &config.proxy_networks_file),
            (Source::Relay, &config.relay_networks_file),
        ] {
            if let Some(p) = path {
                files.push((source, p.clone()));
            }
        }
        let seen = files.iter().map(|(_, p)| modified(p)).collect();
        let geo = Geo { data: RwLock::default(), files, seen: RwLock::new(seen), trusted, country_header };
        let data = geo.read_files()?;
        *geo.data.write().expect("geo lock") = Arc::new(data);
        Ok(geo)
    }

    fn read_files(&self) -> anyhow::Result<GeoData> {
        let mut data = GeoData::default();
        for (source, path) in &self.files {
            let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if *source == Source::Countries && is_mmdb(&bytes) {
                read_mmdb(bytes, &mut data.countries).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                continue;
            }
            let text = String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{}: not a text file", path.display()))?;
            let fail = |e: kelviq_core::geo::LineError| anyhow::anyhow!("{}: {e}", path.display());
            match source {
                Source::Countries => data.countries.parse(&text).map_err(fail)?,
                Source::Vpn => data.vpn = IpSet::parse(&text).map_err(fail)?,
                Source::Tor => data.tor = IpSet::parse(&text).map_err(fail)?,
                Source::Proxy => data.proxy = IpSet::parse(&text).map_err(fail)?,
                Source::Relay => data.relay = IpSet::parse(&text).map_err(fail)?,
            }
        }
        data.countries.finish();
        Ok(data)
    }

    /// Reads the files again if any changed since; a file that cannot be
    /// read now leaves what was read before in force. Whether it reloaded.
    pub fn reload_if_changed(&self) -> bool {
        let now: Vec<Option<SystemTime>> = self.files.iter().map(|(_, p)| modified(p)).collect();
        if *self.seen.read().expect("geo lock") == now {
            return false;
        }
        *self.seen.write().expect("geo lock") = now;
        match self.read_files() {
            Ok(data) => {
                tracing::info!(ranges = data.countries.len(), "geo files reloaded");
                *self.data.write().expect("geo lock") = Arc::new(data);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "geo files changed but cannot be read; keeping the previous ones");
                false
            }
        }
    }

    pub fn data(&self) -> Arc<GeoData> {
        self.data.read().expect("geo lock").clone()
    }

    /// The country of an address from the database.
    pub fn country_of(&self, ip: IpAddr) -> Option<String> {
        self.data().countries.country(ip).map(str::to_string)
    }
}

/// The marker before a MaxMind DB file's metadata.
const MMDB_MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";

fn is_mmdb(bytes: &[u8]) -> bool {
    bytes.windows(MMDB_MARKER.len()).rev().take(128 * 1024).any(|w| w == MMDB_MARKER)
}

/// Reads a MaxMind DB (GeoIP2/GeoLite2 Country or City, or any database
/// whose records have `country.iso_code`, else `registered_country.iso_code`)
/// into ranges: lookups then take the same path as the text formats.
fn read_mmdb(bytes: Vec<u8>, into: &mut IpCountries) -> anyhow::Result<()> {
    use maxminddb::PathElement::Key;
    let reader = maxminddb::Reader::from_source(bytes)?;
    for found in reader.networks(Default::default())? {
        let found = found?;
        let code: Option<String> = match found.decode_path(&[Key("country"), Key("iso_code")])? {
            Some(c) => Some(c),
            None => found.decode_path(&[Key("registered_country"), Key("iso_code")])?,
        };
        let Some(code) = code else { continue };
        let net = found.network()?;
        let (start, end) = match net {
            ipnetwork::IpNetwork::V4(n) => (IpAddr::V4(n.network()), IpAddr::V4(n.broadcast())),
            ipnetwork::IpNetwork::V6(n) => {
                let host = u128::MAX.checked_shr(u32::from(n.prefix())).unwrap_or(0);
                let first = u128::from(n.network());
                (IpAddr::V6(first.into()), IpAddr::V6((first | host).into()))
            }
        };
        into.push(start, end, &code).map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(())
}

/// Checks the geo files for changes every `geo_reload_interval_ms`.
pub fn spawn_reloader(geo: Arc<Geo>, interval_ms: u64, mut stop: tokio::sync::watch::Receiver<bool>) {
    if geo.files.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(interval_ms.max(10)));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let geo = geo.clone();
                    let _ = tokio::task::spawn_blocking(move || geo.reload_if_changed()).await;
                }
                _ = stop.changed() => return,
            }
        }
    });
}

/// Who is asking: the client's address and country, as far as can be known.
#[derive(Debug, Clone, Default)]
pub struct Visitor {
    pub ip: Option<IpAddr>,
    /// From the trusted header, else the database; `None`: unknown.
    pub country: Option<String>,
    pub user_agent: Option<String>,
}

/// A country code a header or database may give: two letters, and a
/// country (not `XX`, `T1` and the like).
fn real_country(code: &str) -> Option<String> {
    let c = code.trim().to_ascii_uppercase();
    kelviq_core::geo::country_name(&c).map(|_| c)
}

/// The client's address of a request whose peer was `peer` (the last hop
/// before the trusted proxies, which `X-Forwarded-For` lists).
pub fn address(geo: &Geo, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    client_address(peer, forwarded, &geo.trusted)
}

impl Visitor {
    /// The visitor of a request whose peer was `peer`.
    pub fn of(geo: &Geo, peer: Option<IpAddr>, headers: &axum::http::HeaderMap) -> Visitor {
        let text = |name: &axum::http::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let user_agent = text(&axum::http::header::USER_AGENT).map(str::to_string);
        let Some(peer) = peer else { return Visitor { user_agent, ..Default::default() } };
        let trusted = geo.trusted.contains(peer);
        let ip = address(geo, peer, headers);
        let from_header =
            if trusted { geo.country_header.as_ref().and_then(text).and_then(real_country) } else { None };
        let country = from_header.or_else(|| geo.country_of(ip));
        Visitor { ip: Some(ip), country, user_agent }
    }

    /// The visitor at `ip` (an address the merchant gave with a server key).
    pub fn at(geo: &Geo, ip: IpAddr) -> Visitor {
        Visitor { ip: Some(ip), country: geo.country_of(ip), user_agent: None }
    }
}

impl FromRequestParts<crate::state::AppState> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &crate::state::AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(Visitor::of(&state.geo, peer, &parts.headers))
    }
}
