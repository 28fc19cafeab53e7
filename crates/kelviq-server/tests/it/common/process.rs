//! The `kelviq` binary as a user runs it: spawned, read until it listens,
//! killed and reaped when the test ends.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_kelviq");

pub struct Served {
    pub child: Child,
    /// Kept so the reader thread keeps draining stdout.
    _lines: mpsc::Receiver<String>,
    pub url: String,
    pub server_key: Option<String>,
    pub client_key: Option<String>,
}

pub fn kelviq(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DATABASE_URL").env_remove("KELVIQ_DATABASE_URL").env("KELVIQ_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A server process is killed and reaped when its test ends, even on panic.
impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kelviq serve` on a free port and reads what it prints until it listens.
#[allow(clippy::zombie_processes)] // reaped by `Drop for Served`
pub fn serve(env: &[(&str, &str)]) -> Served {
    serve_with(env, Stdio::inherit())
}

/// [`serve`] with the server's stderr (its logs) sent to `stderr`.
#[allow(clippy::zombie_processes)] // reaped by `Drop for Served`
pub fn serve_with(env: &[(&str, &str)], stderr: Stdio) -> Served {
    let mut child = kelviq(env)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn kelviq");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut server_key, mut client_key) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("kelviq serve printed its address");
        if let Some(k) = line.strip_prefix("sandbox server key: ") {
            server_key = Some(k.to_string());
        } else if let Some(k) = line.strip_prefix("sandbox client key: ") {
            client_key = Some(k.to_string());
        } else if let Some(rest) = line.strip_prefix("kelviq listening on ") {
            let url = rest.split_whitespace().next().unwrap().to_string();
            return Served { child, _lines: lines, url, server_key, client_key };
        }
    }
}
