//! The bench's load generator: keep-alive HTTP/1.1 connections that each send
//! a request and read its answer, in a loop, on a thread of their own.
//!
//! It shares the machine with the server it measures, so it does as little
//! as it can per request (as `wrk` does): each request is written into a
//! reused buffer with one write, the answer's head is parsed in place, and
//! the body is skipped by its length. A general client (reqwest) took about as much CPU per request
//! as the server's own HTTP layer.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request: its path, its JSON body (none: a GET) and how many items it carries.
pub struct Request {
    pub path: Cow<'static, str>,
    pub body: Option<String>,
    pub items: u64,
    /// Extra header lines, each ending in `\r\n`.
    pub headers: String,
}

/// Latencies and throughput of one load run.
pub struct Run {
    pub requests: u64,
    pub items: u64,
    pub elapsed: Duration,
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    /// CPU time of the whole process during the run, and of the load thread.
    pub cpu: Option<(Duration, Duration)>,
    /// The whole machine's CPU during the run (every process, every core).
    pub machine: Option<MachineCpu>,
}

/// Machine-wide CPU time over a run, from `/proc/stat`, summed over cores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineCpu {
    /// Time spent running anything (user, system, interrupts).
    pub busy: Duration,
    /// Time no process wanted (idle, and waiting for I/O).
    pub idle: Duration,
    /// Time the hypervisor gave to other machines while this one wanted to run.
    pub steal: Duration,
}

impl MachineCpu {
    /// Reads the machine's totals since boot.
    fn now() -> Option<MachineCpu> {
        MachineCpu::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The totals of `/proc/stat`'s first line: `cpu user nice system idle
    /// iowait irq softirq steal guest guest_nice`, in USER_HZ ticks (guest
    /// time is already counted in user and nice).
    fn parse(stat: &str) -> Option<MachineCpu> {
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let t: Vec<u64> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>().ok()?;
        let tick = |n: u64| Duration::from_millis(n * 10);
        let field = |i: usize| t.get(i).copied().unwrap_or(0);
        Some(MachineCpu {
            busy: tick(field(0) + field(1) + field(2) + field(5) + field(6)),
            idle: tick(field(3) + field(4)),
            steal: tick(field(7)),
        })
    }

    fn since(self, before: MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy.saturating_sub(before.busy),
            idle: self.idle.saturating_sub(before.idle),
            steal: self.steal.saturating_sub(before.steal),
        }
    }

    /// Busy, idle and stolen shares of the machine's time, in percent.
    pub fn shares(&self) -> (f64, f64, f64) {
        let total = (self.busy + self.idle + self.steal).as_secs_f64().max(f64::MIN_POSITIVE);
        let pct = |d: Duration| 100.0 * d.as_secs_f64() / total;
        (pct(self.busy), pct(self.idle), pct(self.steal))
    }
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at fraction `p` (0.99: p99), in milliseconds.
    /// CPU time per request (server, load generator), in microseconds.
    pub fn cpu_per_request_us(&self) -> Option<(f64, f64)> {
        let (all, load) = self.cpu?;
        let n = self.requests.max(1) as f64;
        Some((all.saturating_sub(load).as_secs_f64() * 1e6 / n, load.as_secs_f64() * 1e6 / n))
    }

    /// CPU time per request of every other process on the machine (on
    /// PostgreSQL, mostly the database server), in microseconds.
    pub fn others_cpu_per_request_us(&self) -> Option<f64> {
        let (all, _) = self.cpu?;
        let machine = self.machine?;
        Some(machine.busy.saturating_sub(all).as_secs_f64() * 1e6 / self.requests.max(1) as f64)
    }

    pub fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Runs `connections` connections to `addr` for `seconds`, each sending the
/// requests `make(connection, i)` describes, with `key` as bearer token.
pub async fn load<F>(addr: SocketAddr, key: Option<&str>, connections: usize, seconds: u64, make: F) -> Run
where
    F: Fn(usize, u64) -> Request + Send + Sync + 'static,
{
    let key = key.map(str::to_string);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kelviq-bench-load".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("load runtime");
            let before = (cpu_time("self"), cpu_time("thread-self"));
            let machine = MachineCpu::now();
            let mut run = runtime.block_on(drive(addr, key, connections, seconds, make));
            if let ((Some(p0), Some(t0)), Some(p1), Some(t1)) = (before, cpu_time("self"), cpu_time("thread-self")) {
                run.cpu = Some((p1.saturating_sub(p0), t1.saturating_sub(t0)));
            }
            run.machine = machine.zip(MachineCpu::now()).map(|(before, after)| after.since(before));
            let _ = tx.send(run);
        })
        .expect("load thread");
    rx.await.expect("the load thread answers")
}

async fn drive<F>(addr: SocketAddr, key: Option<String>, connections: usize, seconds: u64, make: F) -> Run
where
    F: Fn(usize, u64) -> Request + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let done = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|w| {
            let (make, done, errors, key) = (make.clone(), done.clone(), errors.clone(), key.clone());
            tokio::spawn(async move {
                let mut conn: Option<Connection> = None;
                let (mut lat, mut items, mut i) = (Vec::new(), 0u64, 0u64);
                while !done.load(Ordering::Relaxed) {
                    let req = make(w, i);
                    i += 1;
                    let t = Instant::now();
                    let ok = match conn.as_mut() {
                        Some(c) => c.exchange(addr, key.as_deref(), &req).await,
                        None => match Connection::open(addr).await {
                            Ok(c) => conn.insert(c).exchange(addr, key.as_deref(), &req).await,
                            Err(e) => Err(e),
                        },
                    };
                    match ok {
                        Ok(status) if (200..300).contains(&status) => items += req.items,
                        Ok(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            conn = None;
                        }
                    }
                    lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                (lat, items)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    done.store(true, Ordering::Relaxed);
    let (mut latencies, mut items) = (Vec::new(), 0);
    for w in workers {
        if let Ok((l, n)) = w.await {
            latencies.extend(l);
            items += n;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Run {
        requests: latencies.len() as u64,
        items,
        elapsed,
        latencies_us: latencies,
        errors: errors.load(Ordering::Relaxed),
        cpu: None,
        machine: None,
    }
}

/// User plus system CPU time of `/proc/<which>` (`self`: the process,
/// `thread-self`: the calling thread), from its `stat` file.
fn cpu_time(which: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{which}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports USER_HZ ticks, 100 per second on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// One keep-alive connection and its buffers.
struct Connection {
    stream: TcpStream,
    out: Vec<u8>,
    inb: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream, out: Vec::with_capacity(4096), inb: Vec::with_capacity(16 * 1024) })
    }

    /// Sends one request and reads its answer; returns the status.
    async fn exchange(&mut self, addr: SocketAddr, key: Option<&str>, req: &Request) -> std::io::Result<u16> {
        use std::io::Write;
        self.out.clear();
        let method = if req.body.is_some() { "POST" } else { "GET" };
        write!(self.out, "{method} {} HTTP/1.1\r\nHost: {addr}\r\n", req.path)?;
        if let Some(k) = key {
            write!(self.out, "Authorization: Bearer {k}\r\n")?;
        }
        self.out.extend_from_slice(req.headers.as_bytes());
        match &req.body {
            Some(b) => {
                write!(self.out, "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", b.len())?;
                self.out.extend_from_slice(b.as_bytes());
            }
            None => self.out.extend_from_slice(b"\r\n"),
        }
        self.stream.write_all(&self.out).await?;
        self.read_response().await
    }

    /// Reads a response framed by `Content-Length` (what the server sends).
    async fn read_response(&mut self) -> std::io::Result<u16> {
        let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        self.inb.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut res = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = res.parse(&self.inb).map_err(|_| bad("malformed response"))? {
                let status = res.code.unwrap_or(0);
                let length = res
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                    .ok_or_else(|| bad("response without Content-Length"))?;
                let total = head + length;
                while self.inb.len() < total {
                    self.fill().await?;
                }
                if self.inb.len() > total {
                    return Err(bad("more bytes than one response"));
                }
                return Ok(status);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let len = self.inb.len();
        self.inb.resize(len + 16 * 1024, 0);
        let n = self.stream.read(&mut self.inb[len..]).await?;
        self.inb.truncate(len + n);
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every request on a connection with `answer`, until it closes.
    async fn serve(answer: &'static [u8]) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut seen = Vec::new();
                    loop {
                        let Ok(n) = s.read(&mut buf).await else { return };
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        // One answer per complete request head (the tests send GETs).
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            // Split the answer to make the reader wait for its body.
                            let (a, b) = answer.split_at(answer.len() / 2);
                            if s.write_all(a).await.is_err() || s.flush().await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            if s.write_all(b).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn machine_totals_read_from_proc_stat() {
        let stat = "cpu  1000 20 300 5000 40 6 7 8 0 0\ncpu0 500 10 150 2500 20 3 3 4 0 0\nintr 1\n";
        let m = MachineCpu::parse(stat).unwrap();
        assert_eq!(m.busy, Duration::from_millis((1000 + 20 + 300 + 6 + 7) * 10));
        assert_eq!(m.idle, Duration::from_millis((5000 + 40) * 10));
        assert_eq!(m.steal, Duration::from_millis(80));
        let later = MachineCpu::parse("cpu  1100 20 300 5100 40 6 7 8 0 0\n").unwrap();
        let d = later.since(m);
        assert_eq!((d.busy, d.idle, d.steal), (Duration::from_secs(1), Duration::from_secs(1), Duration::ZERO));
        assert_eq!(d.shares(), (50.0, 50.0, 0.0));
        assert_eq!(MachineCpu::parse("intr 1\n"), None);
    }

    #[tokio::test]
    async fn counts_answers_by_status_and_reads_split_bodies() {
        let ok = serve(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world").await;
        let run = load(ok, Some("k"), 2, 1, |_, _| Request {
            path: Cow::Borrowed("/x"),
            body: None,
            items: 3,
            headers: String::new(),
        })
        .await;
        assert!(run.requests > 10, "{} requests", run.requests);
        assert_eq!(run.errors, 0);
        assert_eq!(run.items, run.requests * 3);
        let (process, thread) = run.cpu.expect("CPU times are read");
        assert!(thread <= process, "the load thread is part of the process");
        let machine = run.machine.expect("the machine's CPU times are read");
        // /proc/stat counts every core of the machine (whatever this process may use).
        let stat = std::fs::read_to_string("/proc/stat").unwrap();
        let cores = stat.lines().filter(|l| l.starts_with("cpu") && !l.starts_with("cpu ")).count() as u32;
        let wall = run.elapsed * cores.max(1);
        let counted = machine.busy + machine.idle + machine.steal;
        // The run's ticks over every core add up to its length (ticks are 10 ms).
        assert!(counted + Duration::from_millis(200) >= wall / 2 && counted <= wall * 2, "{counted:?} over {wall:?}");
        assert!(run.others_cpu_per_request_us().is_some());

        let refused = serve(b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\n\r\n{}").await;
        let run = load(refused, None, 1, 1, |_, _| Request {
            path: Cow::Borrowed("/x"),
            body: None,
            items: 1,
            headers: String::new(),
        })
        .await;
        assert!(run.requests > 0);
        assert_eq!(run.errors, run.requests, "every non-2xx answer is an error");
        assert_eq!(run.items, 0);
    }
}
