//! The PostgreSQL usage lock: which process may defer usage counters.
//!
//! Every server process on a database holds a session advisory lock on one
//! key, on a connection of its own, for as long as it serves usage. The
//! owner, the one process that defers counters (see
//! `docs/postgres-usage-counters.md`), holds it exclusively as well; the
//! others hold it shared. A process that cannot have it exclusively asks the
//! owner, on [`HANDOVER_CHANNEL`], to give it up, and waits: the owner folds
//! what it deferred, stops deferring, and only then lets go, so no process
//! ever reads counters that lack an owner's pending additions.

use crate::Result;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener};
use sqlx::{ConnectOptions, Connection, Row};
use std::str::FromStr;

/// The advisory lock's key ("kelviq" and 1).
const USAGE_LOCK: i64 = 0x6b65_6c76_6971_0001;
/// Where a process waiting for the usage lock asks the owner to hand over.
pub const HANDOVER_CHANNEL: &str = "kelviq_usage_handover";
/// The lock connection's name in `pg_stat_activity`.
pub const LOCK_APPLICATION: &str = "kelviq usage lock";

/// A connection holding (or about to hold) the usage lock.
pub struct UsageLock {
    conn: PgConnection,
    shared: bool,
    exclusive: bool,
}

impl UsageLock {
    /// Connects; holds nothing yet.
    pub async fn connect(url: &str) -> Result<UsageLock> {
        let options = PgConnectOptions::from_str(url)?.application_name(LOCK_APPLICATION).disable_statement_logging();
        Ok(UsageLock { conn: options.connect().await?, shared: false, exclusive: false })
    }

    /// Takes the lock shared and, if no other process holds it at all,
    /// exclusively too; says whether this process now owns usage.
    pub async fn try_own(&mut self) -> Result<bool> {
        // Taken again, the lock would need two unlocks to be given up.
        if self.exclusive {
            return Ok(true);
        }
        if !self.try_shared().await? {
            return Ok(false);
        }
        let owned: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
            .bind(USAGE_LOCK)
            .fetch_one(&mut self.conn)
            .await?
            .try_get(0)?;
        self.exclusive = owned;
        Ok(owned)
    }

    /// Takes the lock shared, asking the owner (every half second) to hand
    /// over until it has.
    pub async fn share(&mut self) -> Result<()> {
        let mut asked = 0u32;
        while !self.try_shared().await? {
            if asked.is_multiple_of(20) {
                tracing::info!("usage lock: waiting for the process that defers usage counters to hand over");
            }
            sqlx::query("SELECT pg_notify($1, '')").bind(HANDOVER_CHANNEL).execute(&mut self.conn).await?;
            asked += 1;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Ok(())
    }

    async fn try_shared(&mut self) -> Result<bool> {
        if !self.shared {
            self.shared = sqlx::query("SELECT pg_try_advisory_lock_shared($1)")
                .bind(USAGE_LOCK)
                .fetch_one(&mut self.conn)
                .await?
                .try_get(0)?;
        }
        Ok(self.shared)
    }

    /// Gives up ownership (keeps the shared hold).
    pub async fn release_exclusive(&mut self) -> Result<()> {
        if self.exclusive {
            sqlx::query("SELECT pg_advisory_unlock($1)").bind(USAGE_LOCK).execute(&mut self.conn).await?;
            self.exclusive = false;
        }
        Ok(())
    }

    /// Whether this process owns usage (as far as this connection knows).
    pub fn owns(&self) -> bool {
        self.exclusive
    }

    /// Checks the connection (and so the lock) is still there.
    pub async fn ping(&mut self) -> Result<()> {
        Ok(self.conn.ping().await?)
    }
}

/// A connection listening for requests to hand usage over.
pub struct HandoverListener(PgListener);

impl HandoverListener {
    pub async fn connect(url: &str) -> Result<HandoverListener> {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(HANDOVER_CHANNEL).await?;
        Ok(HandoverListener(listener))
    }

    /// Waits for a request (a lost connection is re-established by the next wait).
    pub async fn asked(&mut self) -> Result<()> {
        self.0.recv().await?;
        Ok(())
    }
}
