//! Where a visitor is: IP ranges to countries (Tor's `geoip`/`geoip6` text
//! files, or a CSV of ranges), sets of networks (VPN, Tor, proxy and relay
//! lists an operator supplies), crawlers by User-Agent, and country names.
//! Lookups are binary searches over sorted ranges: O(log n).

pub mod countries;

use std::net::IpAddr;

/// Codes the databases use for "not a country": unknown, the EU, Asia/Pacific,
/// anonymous proxies and satellite providers.
const NOT_COUNTRIES: &[&str] = &["??", "EU", "AP", "A1", "A2", "O1", "ZZ", "XX"];

/// A country's common English name, from its ISO 3166-1 alpha-2 code.
pub fn country_name(code: &str) -> Option<&'static str> {
    let code = code.to_ascii_uppercase();
    countries::COUNTRIES.binary_search_by(|(c, _)| (*c).cmp(code.as_str())).ok().map(|i| countries::COUNTRIES[i].1)
}

/// A country's flag: its two regional indicator symbols.
pub fn flag(code: &str) -> String {
    code.to_ascii_uppercase()
        .bytes()
        .filter(u8::is_ascii_uppercase)
        .filter_map(|b| char::from_u32(0x1F1E6 + u32::from(b - b'A')))
        .collect()
}

/// An address as a number: IPv4 (and IPv4-mapped IPv6) as `V4`.
fn key(ip: IpAddr) -> Key {
    match ip {
        IpAddr::V4(v4) => Key::V4(u32::from(v4)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Key::V4(u32::from(v4)),
            None => Key::V6(u128::from(v6)),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    V4(u32),
    V6(u128),
}

/// The range holding `x` among ranges sorted by start and not overlapping.
fn find<T: Ord + Copy, V>(ranges: &[(T, T, V)], x: T) -> Option<&V> {
    let i = ranges.partition_point(|r| r.0 <= x);
    let r = ranges.get(i.checked_sub(1)?)?;
    (x <= r.1).then_some(&r.2)
}

/// IP ranges and the country each belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpCountries {
    v4: Vec<(u32, u32, [u8; 2])>,
    v6: Vec<(u128, u128, [u8; 2])>,
}

/// A line of a range file that could not be read: its number and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn bad(line: usize, message: impl Into<String>) -> LineError {
    LineError { line, message: message.into() }
}

/// One end of a range: a decimal IPv4 number (Tor's `geoip`) or an address.
fn end(text: &str) -> Option<Key> {
    let t = text.trim().trim_matches('"');
    if let Ok(n) = t.parse::<u32>() {
        return Some(Key::V4(n));
    }
    t.parse::<IpAddr>().ok().map(key)
}

impl IpCountries {
    /// Reads ranges `start,end,CC`, one per line: Tor's `geoip` (decimal
    /// IPv4 numbers), `geoip6` (IPv6 addresses) or a CSV of addresses (a
    /// header line is skipped; quotes are allowed). `#` starts a comment.
    /// Ranges of no country (`??`, `EU`, `AP`, …) are left out.
    pub fn parse(&mut self, text: &str) -> Result<(), LineError> {
        let mut first = true;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let header = std::mem::replace(&mut first, false);
            let fields: Vec<&str> = line.split(',').map(|f| f.trim().trim_matches('"')).collect();
            if fields.len() < 3 {
                return Err(bad(i + 1, "expected start,end,country"));
            }
            let (Some(start), Some(stop)) = (end(fields[0]), end(fields[1])) else {
                if header {
                    continue; // a CSV header
                }
                return Err(bad(i + 1, format!("{:?} or {:?} is not an address", fields[0], fields[1])));
            };
            let cc = fields[2].to_ascii_uppercase();
            if NOT_COUNTRIES.contains(&cc.as_str()) {
                continue;
            }
            let code = match cc.as_bytes() {
                [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => [*a, *b],
                _ => return Err(bad(i + 1, format!("{:?} is not a country code", fields[2]))),
            };
            match (start, stop) {
                (Key::V4(a), Key::V4(b)) if a <= b => self.v4.push((a, b, code)),
                (Key::V6(a), Key::V6(b)) if a <= b => self.v6.push((a, b, code)),
                _ => return Err(bad(i + 1, "the range's ends are of different kinds or reversed")),
            }
        }
        Ok(())
    }

    /// Adds one range (both ends of one kind) of a country; a range of no
    /// country (`??`, `EU`, …) is left out.
    pub fn push(&mut self, start: IpAddr, end: IpAddr, country: &str) -> Result<(), String> {
        let cc = country.to_ascii_uppercase();
        if NOT_COUNTRIES.contains(&cc.as_str()) {
            return Ok(());
        }
        let code = match cc.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => [*a, *b],
            _ => return Err(format!("{country:?} is not a country code")),
        };
        match (key(start), key(end)) {
            (Key::V4(a), Key::V4(b)) if a <= b => self.v4.push((a, b, code)),
            (Key::V6(a), Key::V6(b)) if a <= b => self.v6.push((a, b, code)),
            _ => return Err(format!("{start}–{end} is not a range")),
        }
        Ok(())
    }

    /// Sorts the ranges for lookups; where ranges overlap, the later start wins.
    pub fn finish(&mut self) {
        fn settle<T: Ord + Copy + std::ops::Sub<Output = T> + From<u8>>(r: &mut Vec<(T, T, [u8; 2])>) {
            r.sort_by_key(|x| x.0);
            for i in 1..r.len() {
                if r[i].0 <= r[i - 1].1 {
                    r[i - 1].1 = r[i].0 - T::from(1);
                }
            }
            r.retain(|x| x.0 <= x.1);
        }
        settle(&mut self.v4);
        settle(&mut self.v6);
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The country of an address, if a range holds it.
    pub fn country(&self, ip: IpAddr) -> Option<&str> {
        let code = match key(ip) {
            Key::V4(x) => find(&self.v4, x),
            Key::V6(x) => find(&self.v6, x),
        }?;
        std::str::from_utf8(code).ok()
    }
}

/// A set of networks (CIDR blocks or single addresses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u32, u32, ())>,
    v6: Vec<(u128, u128, ())>,
}

impl IpSet {
    /// Reads one network per line (`203.0.113.0/24`, `2001:db8::/32`,
    /// `198.51.100.7`); `#` starts a comment.
    pub fn parse(text: &str) -> Result<IpSet, LineError> {
        let mut set = IpSet::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (addr, prefix) = match line.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (line, None),
            };
            let ip: IpAddr = addr.trim().parse().map_err(|_| bad(i + 1, format!("{line:?} is not a network")))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p.trim().parse::<u32>().ok().filter(|p| *p <= max),
                None => Some(max),
            }
            .ok_or_else(|| bad(i + 1, format!("{line:?}: bad prefix length")))?;
            match ip {
                IpAddr::V4(v4) => {
                    let host = u32::MAX.checked_shr(prefix).unwrap_or(0);
                    let start = u32::from(v4) & !host;
                    set.v4.push((start, start | host, ()));
                }
                IpAddr::V6(v6) => {
                    let host = u128::MAX.checked_shr(prefix).unwrap_or(0);
                    let start = u128::from(v6) & !host;
                    set.v6.push((start, start | host, ()));
                }
            }
        }
        fn merge<T: Ord + Copy>(r: &mut Vec<(T, T, ())>) {
            r.sort_by_key(|x| x.0);
            let mut out: Vec<(T, T, ())> = Vec::with_capacity(r.len());
            for x in r.drain(..) {
                match out.last_mut() {
                    Some(last) if x.0 <= last.1 => last.1 = last.1.max(x.1),
                    _ => out.push(x),
                }
            }
            *r = out;
        }
        merge(&mut set.v4);
        merge(&mut set.v6);
        Ok(set)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match key(ip) {
            Key::V4(x) => find(&self.v4, x).is_some(),
            Key::V6(x) => find(&self.v6, x).is_some(),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Words in the User-Agent of crawlers, bots and headless browsers.
const CRAWLER_WORDS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "facebookexternalhit",
    "mediapartners",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "python-requests",
    "scrapy",
    "wget",
    "curl/",
];

/// Whether a User-Agent is a crawler's (an empty one counts: browsers send one).
pub fn is_crawler(user_agent: Option<&str>) -> bool {
    match user_agent.map(str::trim).filter(|u| !u.is_empty()) {
        None => true,
        Some(ua) => {
            let ua = ua.to_ascii_lowercase();
            CRAWLER_WORDS.iter().any(|w| ua.contains(w))
        }
    }
}

/// The client's address behind trusted proxies: the rightmost address of
/// `X-Forwarded-For` that is not a trusted proxy, when the peer is one;
/// else the peer itself.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &IpSet) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let hops = forwarded_for.unwrap_or("").split(',').map(str::trim).filter(|h| !h.is_empty());
    let mut client = peer;
    for hop in hops.rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests;
