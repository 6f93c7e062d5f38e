//! The faults of a chaos run: the AWS faults every request may draw (the proxy's rules), and the one fault on the
//! data side a day may get, each injected mid-operation by a watcher that waits for the operation to be under way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::faults::{Kind, Rules};
use crate::postgres::Postgres;

/// The AWS faults every request of every run may draw, at these rates: rare enough that the SDK's retries (eight
/// attempts, standard back-off) carry almost every call through, common enough that a month meets each kind many times.
/// `percent` is the share of requests that draw a fault, split: throttling 2/7, the rest 1/7 each.
pub fn background(seed: u64, percent: f64) -> Rules {
    // Why not more: every retried call backs off exponentially (with jitter, up to 20 s), and at a few percent a
    // month's run spends most of its time waiting.
    let unit = percent / 100.0 / 7.0;
    Rules::seed(seed)
        .on("*", "*", Kind::Throttle, 2.0 * unit)
        .on("*", "*", Kind::Error500, unit)
        .on("*", "*", Kind::Error503, unit)
        .on("*", "*", Kind::Reset, unit)
        .on("*", "*", Kind::Lost, unit)
        .slow("*", "*", unit, Duration::from_millis(400))
}

/// A fault on the data side, or a burst of one AWS operation failing, injected into one run of a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DataFault {
    /// The export's `pg_dump` connection terminated while it dumps (the 02:00 export tick's first attempt).
    PgDumpKilled,
    /// Every `UploadPart` of the export's upload answered with a 500, past the SDK's retries (the 02:00 export
    /// tick's first attempt).
    UploadPartFails,
    /// The PostgreSQL server restarted while the database's restore test checks the restored copy.
    PgRestartInTest,
    /// The connection of the restore test's scratch restore (`pg_restore` into its scratch database) terminated
    /// while it restores.
    PgRestoreKilled,
    /// The restore test's connection to the restored copy terminated while it checks the copy's rows.
    PgCheckKilled,
    /// The Redis server frozen (no answer) while the cache's restore test counts its keys.
    RedisGoneInCheck,
}

impl DataFault {
    pub const ALL: [DataFault; 6] = [
        DataFault::PgDumpKilled,
        DataFault::UploadPartFails,
        DataFault::PgRestartInTest,
        DataFault::PgRestoreKilled,
        DataFault::PgCheckKilled,
        DataFault::RedisGoneInCheck,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DataFault::PgDumpKilled => "pg_dump's connection killed mid-dump",
            DataFault::UploadPartFails => "S3 UploadPart failing past the retries",
            DataFault::PgRestartInTest => "PostgreSQL restarted during a restore test",
            DataFault::PgRestoreKilled => "a restore test's pg_restore connection killed mid-restore",
            DataFault::PgCheckKilled => "a restore test's connection killed mid-check",
            DataFault::RedisGoneInCheck => "Redis gone during a cache check",
        }
    }

    /// The restore-test state whose task the fault is injected into (its path ends so), or `None` for a fault of
    /// the export tick's.
    pub fn test_state(self) -> Option<&'static str> {
        match self {
            DataFault::PgRestartInTest | DataFault::PgRestoreKilled | DataFault::PgCheckKilled => Some("/Verify"),
            DataFault::RedisGoneInCheck => Some("/CacheVerify"),
            DataFault::PgDumpKilled | DataFault::UploadPartFails => None,
        }
    }

    /// The fault day `day` (from 0) gets: none on the first day (a baseline), then each kind in turn on every
    /// third day from the second, so that a month meets each once or twice and a short run meets them in order.
    pub fn of_day(day: u32) -> Option<DataFault> {
        if day % 3 != 1 {
            return None;
        }
        let i = usize::try_from(day / 3).unwrap_or(0) % Self::ALL.len();
        Some(Self::ALL[i])
    }
}

/// Waits until a session matching `condition` (SQL over `pg_stat_activity`) is on `pg`, then does `act` with its
/// pid; gives up when `done` is set (the operation ended first) or after `within`. Returns whether it acted.
///
/// It polls every millisecond over a connection of its own: a poll through `psql` (a process, a SCRAM login and a
/// backend each time) takes tens of milliseconds, longer than a scratch restore of the month's small database.
pub fn when_session(
    pg: &Postgres,
    condition: &str,
    within: Duration,
    done: &AtomicBool,
    act: impl FnOnce(&str),
) -> bool {
    let until = Instant::now() + within;
    let sql = format!("select pid::text from pg_stat_activity where ({condition}) and pid <> pg_backend_pid() limit 1");
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return false;
    };
    let found = runtime.block_on(async {
        let mut client = None;
        while Instant::now() < until && !done.load(Ordering::SeqCst) {
            if client.is_none() {
                client = connect(pg).await;
            }
            if let Some(c) = &client {
                match c.query_opt(&sql, &[]).await {
                    Ok(Some(row)) => return row.try_get::<_, String>(0).ok(),
                    Ok(None) => {}
                    Err(_) => client = None,
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        None
    });
    drop(runtime);
    found.map(|pid| act(pid.as_str())).is_some()
}

/// A connection of the superuser's to `pg`'s `postgres` database, driven on the current runtime.
async fn connect(pg: &Postgres) -> Option<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(&pg.url("postgres"), tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(client)
}

/// Ends the session `pid` of `pg` (its client sees the connection closed); a session already gone is no error.
pub fn terminate(pg: &Postgres, pid: &str) {
    let _ = pg.psql("postgres", &format!("select pg_terminate_backend({pid})"));
}

/// Holds an exclusive lock on `table` of `db` while `during` runs, so that a dump of it waits on the lock where a
/// watcher can find it; the lock's session is ended afterwards whatever happened.
pub fn with_table_locked<T>(pg: &Postgres, db: &str, table: &str, during: impl FnOnce() -> T) -> T {
    const MARK: &str = "lifeboat-chaos-lock";
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = pg.psql(
                db,
                &format!("begin; lock table {table} in access exclusive mode; select pg_sleep(60) /* {MARK} */"),
            );
        });
        let until = Instant::now() + Duration::from_secs(30);
        let granted = format!(
            "select count(*) from pg_locks l join pg_class c on c.oid = l.relation \
             where c.relname = '{table}' and l.mode = 'AccessExclusiveLock' and l.granted"
        );
        while Instant::now() < until && pg.psql(db, &granted).as_deref() != Ok("1") {
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = during();
        let _ = pg.psql(
            "postgres",
            &format!("select pg_terminate_backend(pid) from pg_stat_activity where query like '%{MARK}%' and pid <> pg_backend_pid()"),
        );
        out
    })
}
