//! The embedded backend: one SQLite file (WAL mode, so several local processes can share it).
//!
//! Reads run on the calling thread, on a pooled connection: an indexed look-up in WAL mode never
//! waits for a lock and takes microseconds, less than a hop to a blocking thread and back.
//! Writes run on the one writer connection, in its own thread (`Writer`), in the order they
//! come. Every change runs in a `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock up
//! front: of two processes rotating the same token, the second sees the first's result. Inside
//! one process the writes queue for the writer thread instead of meeting at SQLite's lock, whose
//! busy handler sleeps (1, 2, 5, ... 100 ms) between tries: that sleeping was the refresh
//! benchmark's p99. The writes that queued while one transaction ran go into the next one
//! together, each inside its own savepoint (group commit): one commit, one set of WAL frames and
//! one thread wake-up for a burst of refreshes instead of one each. SQLite's automatic checkpoint
//! (the commit past 1,000 WAL pages copies them back into the file) stays on the writer: while it
//! runs no write of this process adds frames, so it completes and the next write restarts the
//! WAL; the writes that queue meanwhile commit together after it. (A checkpointer thread of its
//! own never caught up with sustained writes: the WAL reached 1.5 GB in the benchmark.)
//! Statements are prepared once per connection (`prepare_cached`). The writer thread also keeps
//! one read transaction open while nobody writes (`ReadLockAnchor`), so that the readers' WAL
//! locks stay inside the process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Params, Row, TransactionBehavior};

use super::{Admission, BlacklistStore, Reservation, SessionStore, StoreError, StoreResult, ThrottleStore, UserStore};
use crate::domain::model::{
    username_key, BlacklistEntry, LogoutOutcome, NewUser, PasswordReplacement, RotateOutcome, Rotation, Session,
    SpentToken, User, UserUpdate,
};
use crate::domain::throttle::{self, Rule, Usage};
use crate::domain::user::username_skeleton;

/// 2: password versions (users, sessions) and username skeletons. 3: the sessions' device,
/// address, last use and previous refresh token.
const SCHEMA_VERSION: i64 = 3;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL UNIQUE,
    username_skeleton TEXT UNIQUE,         -- NULL only for look-alikes that predate the rule
    email         TEXT NOT NULL DEFAULT '',
    email_key     TEXT UNIQUE,             -- NULL when there is no e-mail
    password      TEXT NOT NULL,
    first_name    TEXT NOT NULL DEFAULT '',
    last_name     TEXT NOT NULL DEFAULT '',
    nickname      TEXT NOT NULL DEFAULT '',
    signature     TEXT NOT NULL DEFAULT '',
    avatar        TEXT,
    is_active     INTEGER NOT NULL DEFAULT 1,
    date_joined   INTEGER NOT NULL,
    last_login    INTEGER,
    password_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    id            TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL,
    refresh_jti   TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    password_version INTEGER NOT NULL DEFAULT 0,
    device        TEXT NOT NULL DEFAULT '',
    ip            TEXT NOT NULL DEFAULT '',
    last_used_at  INTEGER,                 -- NULL: never refreshed since schema 3 (created_at)
    previous_jti  TEXT
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(user_id);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions(expires_at);
CREATE TABLE IF NOT EXISTS blacklist (
    jti            TEXT PRIMARY KEY,
    user_id        INTEGER NOT NULL,
    session_id     TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    blacklisted_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS blacklist_by_expiry ON blacklist(expires_at);
CREATE TABLE IF NOT EXISTS throttle (
    key            TEXT PRIMARY KEY,      -- counter name @ window start
    count          INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL       -- the end of the next window (until then it is its previous one)
);
CREATE INDEX IF NOT EXISTS throttle_by_expiry ON throttle(expires_at);
";

const USER_COLUMNS: &str = "id, username, email, password, first_name, last_name, nickname, signature, avatar, is_active, date_joined, last_login, password_version";
const SESSION_COLUMNS: &str =
    "id, user_id, refresh_jti, created_at, expires_at, password_version, device, ip, last_used_at, previous_jti";

/// Distinct statements kept prepared per connection (rusqlite's default is 16; we have more).
const STATEMENT_CACHE: usize = 64;

pub struct SqliteStore {
    path: PathBuf,
    /// Connections for reads; one is opened when all are in use (at most one per thread that
    /// reads at the same time: the runtime's workers and the blocking threads).
    readers: Mutex<Vec<Connection>>,
    /// The thread of the one connection that writes.
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/accounts.sqlite3`. A new data folder is made
    /// private (0700): it holds password hashes and the local signing key.
    pub fn open(data_dir: &Path) -> StoreResult<Self> {
        crate::private_files::create_dir(data_dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", data_dir.display())))?;
        Self::open_file(&data_dir.join("accounts.sqlite3"))
    }

    pub fn open_file(path: &Path) -> StoreResult<Self> {
        // Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the same mode.
        crate::private_files::touch(path)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))?;
        let mut writer = connect(path)?;
        migrate(&mut writer)?;
        let readers = Mutex::new(vec![connect(path)?]);
        Ok(Self { path: path.to_path_buf(), readers, writer: Writer::start(writer, path.to_path_buf())? })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs the read `f` here, on a pooled connection.
    async fn run<T>(&self, f: impl FnOnce(&mut Connection) -> StoreResult<T>) -> StoreResult<T> {
        let pooled = self.readers.lock().map_err(|_| poisoned())?.pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path)?,
        };
        let result = f(&mut conn);
        self.readers.lock().map_err(|_| poisoned())?.push(conn);
        result
    }

    /// Runs `f` inside a write transaction on the writer thread, and answers once it is
    /// committed. When `f` fails, nothing it wrote stays.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (answer, answered) = tokio::sync::oneshot::channel::<StoreResult<T>>();
        let write: Write = Box::new(move |tx| {
            let (ran, finish): (bool, Finish) = match tx.map_err(clone_error).and_then(f) {
                Ok(value) => (true, Box::new(move |committed| drop(answer.send(committed.map(|()| value))))),
                Err(e) => (false, Box::new(move |_| drop(answer.send(Err(e))))),
            };
            (ran, finish)
        });
        self.writer.queue.send(write).map_err(|_| writer_gone())?;
        answered.await.map_err(|_| writer_gone())?
    }
}

/// One queued write: run with the open transaction (or the error that prevented opening one),
/// it says whether it succeeded and returns what answers its caller once the outcome of the
/// commit is known.
type Write = Box<dyn FnOnce(Result<&rusqlite::Transaction<'_>, &StoreError>) -> (bool, Finish) + Send>;
type Finish = Box<dyn FnOnce(StoreResult<()>) + Send>;

/// Writes of one transaction at most: a burst of this many commits once.
const WRITES_PER_COMMIT: usize = 64;

/// The thread that owns the writer connection and commits the queued writes (group commit: see
/// the module's comment). It ends when its store is dropped (the queue's last sender goes).
struct Writer {
    queue: std::sync::mpsc::Sender<Write>,
}

impl Writer {
    fn start(mut conn: Connection, path: PathBuf) -> StoreResult<Self> {
        let (queue, queued) = std::sync::mpsc::channel::<Write>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                // Opened here, off the caller's path (a Lambda's cold start opens the store).
                let mut anchor = ReadLockAnchor::open(&path, &conn);
                anchor.hold(&conn);
                loop {
                    let first = match queued.recv_timeout(ANCHOR_POLL) {
                        Ok(first) => first,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            anchor.move_to_newest(&conn);
                            continue;
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    let mut writes = vec![first];
                    writes.extend(queued.try_iter().take(WRITES_PER_COMMIT - 1));
                    // Away while writing: the commit's checkpoint may then copy every frame back
                    // and the next write restart the WAL.
                    anchor.release();
                    commit_together(&mut conn, writes, &mut anchor);
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the store's writer: {e}")))?;
        Ok(Self { queue })
    }
}

/// How often the writer thread, while it has nothing to write, looks for other processes'
/// commits and moves the anchor to the newest commit (which lets a checkpoint that waits for
/// readers finish: the anchor then reads from the file, not from the WAL).
const ANCHOR_POLL: Duration = Duration::from_millis(50);

/// How long the anchor stays away after another connection committed. While another process
/// writes (the token minter of bench/run, tools/import-users, tools/accounts-admin), its
/// checkpoints must be able to restart the WAL, which no reader of it may hold at that moment.
const ANCHOR_BACK_OFF: Duration = Duration::from_secs(1);

/// A connection that keeps a read transaction open on the newest commit, on the writer thread.
///
/// Why: each read transaction locks a read mark of the WAL index (SQLite's `-shm` file), and
/// SQLite calls `fcntl` for that only when no connection of this process holds the same mark
/// already; it does so under a process-wide mutex, which the runtime's workers then wait for.
/// Readers take the mark of the newest commit, the one the anchor holds: their locks become a
/// counter in memory (issue 17: 1.7 `fcntl` and 1.75 `futex` calls per authenticated request
/// without it). Every reader still opens its own transaction, so it sees every commit of every
/// process as before.
///
/// An anchor that never lets go keeps every other process from restarting the WAL, which then
/// grows with each of their commits (bench/run's token minter left 3 GB). So it lets go while
/// this process writes, and stays away for `ANCHOR_BACK_OFF` after it sees another connection's
/// commit: the writer connection's `PRAGMA data_version` changes only then. It looks at most
/// every `ANCHOR_POLL`; a burst of another process therefore finds the WAL held for at most
/// that long. Tests: shared/tests/integration/store/sqlite_only.rs.
struct ReadLockAnchor {
    /// `None` if it could not be opened: reads work as they do without an anchor.
    conn: Option<Connection>,
    /// The writer connection's `data_version` when last looked at, and when that was.
    others_version: Option<i64>,
    looked_at: Instant,
    away_until: Option<Instant>,
}

impl ReadLockAnchor {
    fn open(path: &Path, writer: &Connection) -> Self {
        let conn = connect(path).map_err(|e| tracing::debug!(error = %e, "no read-lock anchor")).ok();
        Self { conn, others_version: data_version(writer), looked_at: Instant::now(), away_until: None }
    }

    /// Starts a read transaction on the newest commit, unless one is open or another connection
    /// committed lately. `writer` must be outside a transaction. A failure leaves no anchor:
    /// reads work as they do without one.
    fn hold(&mut self, writer: &Connection) {
        let now = Instant::now();
        if now.duration_since(self.looked_at) >= ANCHOR_POLL || self.others_version.is_none() {
            self.looked_at = now;
            let version = data_version(writer);
            if version.is_none() || version != self.others_version {
                self.others_version = version;
                self.away_until = Some(now + ANCHOR_BACK_OFF);
            }
        }
        if self.away_until.is_some_and(|until| now < until) {
            self.release();
            return;
        }
        self.away_until = None;
        let Some(conn) = &self.conn else { return };
        if !conn.is_autocommit() {
            return;
        }
        let held = conn.execute_batch("BEGIN").and_then(|()| conn.query_row("PRAGMA user_version", [], |_| Ok(())));
        if let Err(e) = held {
            tracing::debug!(error = %e, "no read-lock anchor");
            self.release();
        }
    }

    /// Lets go and holds again, on the newest commit, unless another connection committed.
    fn move_to_newest(&mut self, writer: &Connection) {
        self.release();
        self.hold(writer);
    }

    fn release(&mut self) {
        let Some(conn) = &self.conn else { return };
        if !conn.is_autocommit() {
            if let Err(e) = conn.execute_batch("ROLLBACK") {
                tracing::debug!(error = %e, "read-lock anchor not released");
            }
        }
    }
}

/// Changes only when another connection commits (SQLite's `PRAGMA data_version`).
fn data_version(conn: &Connection) -> Option<i64> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()
}

/// Runs `writes` in one transaction, each inside its own savepoint so that a failed write undoes
/// only itself, then commits and answers each (a failed commit fails them all: nothing stayed).
/// The anchor takes the new commit before the writes are answered: a caller that wrote finds
/// the readers back on the anchored read mark.
fn commit_together(conn: &mut Connection, writes: Vec<Write>, anchor: &mut ReadLockAnchor) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = db_error(e);
            for write in writes {
                let (_, finish) = run_write(write, Err(&e));
                finish(Err(clone_error(&e)));
            }
            return;
        }
    };
    let mut finishes: Vec<Finish> = Vec::with_capacity(writes.len());
    for write in writes {
        let savepoint = tx.execute_batch("SAVEPOINT write").map_err(db_error);
        let (ran, finish) = run_write(write, savepoint.as_ref().map(|()| &tx));
        let end = if ran || savepoint.is_err() { "RELEASE write" } else { "ROLLBACK TO write; RELEASE write" };
        if savepoint.is_ok() {
            if let Err(e) = tx.execute_batch(end) {
                // The transaction's state is unknown: undo all of it.
                let e = db_error(e);
                finish(Err(clone_error(&e)));
                for finish in finishes {
                    finish(Err(clone_error(&e)));
                }
                return; // dropping `tx` rolls back
            }
        }
        finishes.push(finish);
    }
    let committed = tx.commit().map_err(db_error);
    anchor.hold(conn);
    for finish in finishes {
        finish(committed.as_ref().map(|_| ()).map_err(clone_error));
    }
}

/// Runs one write; a panic in it (a bug) fails that write (its caller's answer channel is
/// dropped: `writer_gone`), not the writer thread.
fn run_write(write: Write, tx: Result<&rusqlite::Transaction<'_>, &StoreError>) -> (bool, Finish) {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(tx))).unwrap_or_else(|_| {
        tracing::error!("a store write panicked; its changes are undone");
        (false, Box::new(|_| {}))
    })
}

/// The same error for another write of a batch.
fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(text) => StoreError::Unavailable(text.clone()),
        other => StoreError::Backend(other.to_string()),
    }
}

fn writer_gone() -> StoreError {
    StoreError::Backend("the store's writer gave no answer".into())
}

fn poisoned() -> StoreError {
    StoreError::Backend("connection pool poisoned".into())
}

/// `query_row` and `execute` on statements prepared once per connection.
trait CachedStatements {
    fn query_row_cached<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
}

impl CachedStatements for Connection {
    fn query_row_cached<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

/// Times a connection of this process found the database locked by another and waited.
static LOCK_WAITS: AtomicU64 = AtomicU64::new(0);

/// How often this process waited for another process's write lock (in-process writers queue
/// instead, so a single process never waits here).
pub fn lock_waits() -> u64 {
    LOCK_WAITS.load(Ordering::Relaxed)
}

/// SQLite's busy handler: another process holds the lock. Retries every millisecond for up to
/// about 5 s (SQLite's own handler backs off to 100 ms sleeps, which a waiting request pays).
fn wait_for_lock(attempt: i32) -> bool {
    LOCK_WAITS.fetch_add(1, Ordering::Relaxed);
    if attempt >= 5_000 {
        return false;
    }
    std::thread::sleep(Duration::from_millis(1));
    true
}

fn connect(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(db_error)?;
    conn.busy_handler(Some(wait_for_lock)).map_err(db_error)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(db_error)?;
    // In WAL mode NORMAL loses no data on a process crash, only possibly the last commits on power loss.
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(db_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db_error)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "database schema {version} is newer than this program ({SCHEMA_VERSION})"
        )));
    }
    if version == 1 {
        tx.execute_batch(
            "ALTER TABLE users ADD COLUMN username_skeleton TEXT;
             ALTER TABLE users ADD COLUMN password_version INTEGER NOT NULL DEFAULT 0;
             ALTER TABLE sessions ADD COLUMN password_version INTEGER NOT NULL DEFAULT 0;",
        )
        .map_err(db_error)?;
        // Skeletons of the existing names, oldest first; a later look-alike keeps its name
        // (NULL: uniqueness by skeleton holds from now on).
        let names: Vec<(i64, String)> = {
            let mut statement = tx.prepare("SELECT id, username FROM users ORDER BY id").map_err(db_error)?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db_error)?;
            rows.collect::<rusqlite::Result<_>>().map_err(db_error)?
        };
        for (id, name) in names {
            let skeleton = username_skeleton(&name);
            tx.execute(
                "UPDATE users SET username_skeleton = ?2 WHERE id = ?1
                 AND NOT EXISTS (SELECT 1 FROM users WHERE username_skeleton = ?2)",
                params![id, skeleton],
            )
            .map_err(db_error)?;
        }
        tx.execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS users_by_skeleton ON users(username_skeleton);")
            .map_err(db_error)?;
    }
    if version == 1 || version == 2 {
        tx.execute_batch(
            "ALTER TABLE sessions ADD COLUMN device TEXT NOT NULL DEFAULT '';
             ALTER TABLE sessions ADD COLUMN ip TEXT NOT NULL DEFAULT '';
             ALTER TABLE sessions ADD COLUMN last_used_at INTEGER;
             ALTER TABLE sessions ADD COLUMN previous_jti TEXT;",
        )
        .map_err(db_error)?;
    }
    tx.execute_batch(SCHEMA).map_err(db_error)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(db_error)?;
    tx.commit().map_err(db_error)
}

fn db_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Unavailable(e.to_string()),
        Some(ErrorCode::ConstraintViolation) => {
            let text = e.to_string();
            if text.contains("email_key") {
                StoreError::EmailTaken
            } else if text.contains("username_key") || text.contains("username_skeleton") || text.contains("users.id") {
                StoreError::UsernameTaken
            } else {
                StoreError::Backend(text)
            }
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    user_at(row, 0)
}

/// The user of `USER_COLUMNS` starting at column `at`.
fn user_at(row: &Row<'_>, at: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get::<_, i64>(at)? as u64,
        username: row.get(at + 1)?,
        email: row.get(at + 2)?,
        password_hash: row.get(at + 3)?,
        first_name: row.get(at + 4)?,
        last_name: row.get(at + 5)?,
        nickname: row.get(at + 6)?,
        signature: row.get(at + 7)?,
        avatar: row.get(at + 8)?,
        is_active: row.get(at + 9)?,
        date_joined: row.get(at + 10)?,
        last_login: row.get(at + 11)?,
        password_version: row.get::<_, i64>(at + 12)? as u64,
    })
}

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    session_at(row, 0)
}

/// The session of `SESSION_COLUMNS` starting at column `at`.
fn session_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(at)?,
        user_id: row.get::<_, i64>(at + 1)? as u64,
        refresh_jti: row.get(at + 2)?,
        created_at: row.get(at + 3)?,
        expires_at: row.get(at + 4)?,
        password_version: row.get::<_, i64>(at + 5)? as u64,
        device: row.get(at + 6)?,
        ip: row.get(at + 7)?,
        last_used_at: row.get::<_, Option<i64>>(at + 8)?.unwrap_or(row.get(at + 3)?),
        previous_jti: row.get(at + 9)?,
    })
}

/// Columns in `USER_COLUMNS` (a unit test counts them).
const USER_COLUMN_COUNT: usize = 13;

/// The user (`?1`) and their live session (`?2`, at `?3`), in one row (`session_with_user`).
static SESSION_WITH_USER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {}, {} FROM (SELECT 1)
         LEFT JOIN users u ON u.id = ?1
         LEFT JOIN sessions s ON s.id = ?2 AND s.user_id = ?1 AND s.expires_at > ?3",
        prefixed("u", USER_COLUMNS),
        prefixed("s", SESSION_COLUMNS)
    )
});

/// Whether the session `?2` of the user `?1` is live at `?3` and of the user's current password
/// (`Session::is_valid_for`, in SQL).
const SESSION_IS_VALID: &str = "SELECT EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id
     WHERE s.id = ?2 AND s.user_id = ?1 AND s.expires_at > ?3 AND s.password_version = u.password_version)";

/// Whether the row has the record starting at column `at` (a LEFT JOIN found it).
fn present(row: &Row<'_>, at: usize) -> rusqlite::Result<bool> {
    Ok(row.get_ref(at)? != rusqlite::types::ValueRef::Null)
}

/// `a, b` as `t.a, t.b`.
fn prefixed(table: &str, columns: &str) -> String {
    columns.split(", ").map(|c| format!("{table}.{c}")).collect::<Vec<_>>().join(", ")
}

fn email_key(email: &str) -> Option<String> {
    (!email.is_empty()).then(|| email.to_lowercase())
}

fn get_user(conn: &Connection, id: u64) -> StoreResult<Option<User>> {
    conn.query_row_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"), [id as i64], user_from_row)
        .optional()
        .map_err(db_error)
}

/// A taken username (or a look-alike of one) is reported before a taken e-mail (SQLite names
/// only the first constraint it trips).
fn ensure_username_free(conn: &Connection, username: &str) -> StoreResult<()> {
    let taken = conn
        .query_row_cached(
            "SELECT 1 FROM users WHERE username_key = ?1 OR username_skeleton = ?2",
            [username_key(username), username_skeleton(username)],
            |_| Ok(()),
        )
        .optional()
        .map_err(db_error)?;
    match taken {
        Some(()) => Err(StoreError::UsernameTaken),
        None => Ok(()),
    }
}

fn insert_session(conn: &Connection, s: &Session) -> StoreResult<()> {
    conn.execute_cached(
        &format!("INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![
            s.id,
            s.user_id as i64,
            s.refresh_jti,
            s.created_at,
            s.expires_at,
            s.password_version as i64,
            s.device,
            s.ip,
            s.last_used_at,
            s.previous_jti
        ],
    )
    .map_err(db_error)?;
    Ok(())
}

fn live_blacklist_entry(conn: &Connection, jti: &str, now: i64) -> StoreResult<Option<BlacklistEntry>> {
    conn.query_row_cached(
        "SELECT jti, user_id, session_id, expires_at, blacklisted_at FROM blacklist WHERE jti = ?1 AND expires_at > ?2",
        params![jti, now],
        |row| {
            Ok(BlacklistEntry {
                jti: row.get(0)?,
                user_id: row.get::<_, i64>(1)? as u64,
                session_id: row.get(2)?,
                expires_at: row.get(3)?,
                blacklisted_at: row.get(4)?,
            })
        },
    )
    .optional()
    .map_err(db_error)
}

fn put_blacklist(
    conn: &Connection,
    jti: &str,
    user_id: u64,
    session_id: &str,
    expires_at: i64,
    now: i64,
) -> StoreResult<()> {
    // REPLACE: an expired entry still on disk (not yet purged) is simply overwritten.
    conn.execute_cached(
        "INSERT OR REPLACE INTO blacklist (jti, user_id, session_id, expires_at, blacklisted_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![jti, user_id as i64, session_id, expires_at, now],
    )
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: NewUser, first_session: Session) -> StoreResult<User> {
        self.write(move |tx| {
            ensure_username_free(tx, &user.username)?;
            tx.execute_cached(
                "INSERT INTO users (username, username_key, username_skeleton, email, email_key, password, date_joined) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![user.username, username_key(&user.username), username_skeleton(&user.username), user.email, email_key(&user.email), user.password_hash, user.date_joined],
            )
            .map_err(db_error)?;
            let id = tx.last_insert_rowid() as u64;
            insert_session(tx, &Session { user_id: id, ..first_session })?;
            get_user(tx, id)?.ok_or_else(|| StoreError::Backend("user vanished inside its own transaction".into()))
        })
        .await
    }

    async fn insert_user(&self, user: User) -> StoreResult<()> {
        self.write(move |tx| {
            ensure_username_free(tx, &user.username)?;
            tx.execute_cached(
                &format!("INSERT INTO users ({USER_COLUMNS}, username_key, email_key, username_skeleton) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
                params![
                    user.id as i64, user.username, user.email, user.password_hash, user.first_name, user.last_name,
                    user.nickname, user.signature, user.avatar, user.is_active, user.date_joined, user.last_login,
                    user.password_version as i64, username_key(&user.username), email_key(&user.email),
                    username_skeleton(&user.username)
                ],
            )
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn get_user(&self, id: u64) -> StoreResult<Option<User>> {
        self.run(move |conn| get_user(conn, id)).await
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let key = username_key(username);
        self.run(move |conn| {
            conn.query_row_cached(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = ?1"),
                [key],
                user_from_row,
            )
            .optional()
            .map_err(db_error)
        })
        .await
    }

    async fn email_in_use(&self, email: &str) -> StoreResult<bool> {
        let Some(key) = email_key(email) else { return Ok(false) };
        self.run(move |conn| {
            conn.query_row_cached("SELECT 1 FROM users WHERE email_key = ?1", [key], |_| Ok(()))
                .optional()
                .map(|found| found.is_some())
                .map_err(db_error)
        })
        .await
    }

    async fn find_active_users_by_email(&self, email: &str) -> StoreResult<Vec<User>> {
        let Some(key) = email_key(email.trim()) else { return Ok(Vec::new()) };
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE email_key = ?1 AND is_active ORDER BY id"
                ))
                .map_err(db_error)?;
            let users = statement.query_map([key], user_from_row).map_err(db_error)?;
            users.collect::<rusqlite::Result<Vec<User>>>().map_err(db_error)
        })
        .await
    }

    async fn update_user(&self, id: u64, update: UserUpdate) -> StoreResult<User> {
        self.write(move |tx| {
            let mut user = get_user(tx, id)?.ok_or(StoreError::UserNotFound)?;
            if let Some(username) = update.username {
                // Another user's name, or a look-alike of it (the user's own look-alikes are fine).
                let taken = tx
                    .query_row_cached(
                        "SELECT 1 FROM users WHERE id != ?1 AND (username_key = ?2 OR username_skeleton = ?3)",
                        params![id as i64, username_key(&username), username_skeleton(&username)],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(db_error)?;
                if taken.is_some() {
                    return Err(StoreError::UsernameTaken);
                }
                user.username = username;
            }
            if let Some(v) = update.first_name {
                user.first_name = v;
            }
            if let Some(v) = update.last_name {
                user.last_name = v;
            }
            if let Some(v) = update.nickname {
                user.nickname = v;
            }
            if let Some(v) = update.signature {
                user.signature = v;
            }
            if let Some(v) = update.avatar {
                user.avatar = v;
            }
            tx.execute_cached(
                "UPDATE users SET username = ?2, username_key = ?3, username_skeleton = ?9, first_name = ?4, last_name = ?5, nickname = ?6, signature = ?7, avatar = ?8 WHERE id = ?1",
                params![id as i64, user.username, username_key(&user.username), user.first_name, user.last_name, user.nickname, user.signature, user.avatar, username_skeleton(&user.username)],
            )
            .map_err(db_error)?;
            Ok(user)
        })
        .await
    }

    async fn set_active(&self, id: u64, active: bool) -> StoreResult<()> {
        self.write(move |tx| {
            match tx
                .execute("UPDATE users SET is_active = ?2 WHERE id = ?1", params![id as i64, active])
                .map_err(db_error)?
            {
                0 => Err(StoreError::UserNotFound),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn replace_password_hash(&self, r: PasswordReplacement) -> StoreResult<u64> {
        self.write(move |tx| {
            let id = r.user_id as i64;
            let replaced = tx
                .execute_cached(
                    "UPDATE users SET password = ?3, password_version = password_version + ?4 WHERE id = ?1 AND password = ?2",
                    params![id, r.expected_hash, r.new_hash, i64::from(r.new_version)],
                )
                .map_err(db_error)?;
            let version: Option<i64> = tx
                .query_row_cached("SELECT password_version FROM users WHERE id = ?1", [id], |row| row.get(0))
                .optional()
                .map_err(db_error)?;
            let Some(version) = version else { return Err(StoreError::UserNotFound) };
            if replaced == 0 {
                return Err(StoreError::Stale);
            }
            if let (true, Some(keep)) = (r.new_version, &r.keep_session) {
                tx.execute_cached(
                    "UPDATE sessions SET password_version = ?3 WHERE id = ?1 AND user_id = ?2",
                    params![keep, id, version],
                )
                .map_err(db_error)?;
            }
            Ok(version as u64)
        })
        .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn start_session(&self, session: Session, login_at: i64) -> StoreResult<()> {
        self.write(move |tx| {
            let updated = tx
                .execute_cached(
                    "UPDATE users SET last_login = ?2 WHERE id = ?1 AND password_version = ?3",
                    params![session.user_id as i64, login_at, session.password_version as i64],
                )
                .map_err(db_error)?;
            if updated == 0 {
                return match get_user(tx, session.user_id)? {
                    None => Err(StoreError::UserNotFound),
                    Some(_) => Err(StoreError::Stale),
                };
            }
            insert_session(tx, &session)
        })
        .await
    }

    async fn session_with_user(
        &self,
        user_id: u64,
        session_id: &str,
        now: i64,
    ) -> StoreResult<(Option<User>, Option<Session>)> {
        // One statement, so one read transaction: each takes and drops SQLite's shared-memory
        // read lock (fcntl calls and a process-wide mutex), the main cost of an authenticated
        // read on the embedded store (issue 17). Always one row; a side not found is NULLs.
        self.run(move |conn| {
            conn.query_row_cached(&SESSION_WITH_USER, params![user_id as i64, session_id, now], |row| {
                let user = present(row, 0)?.then(|| user_at(row, 0)).transpose()?;
                let at = USER_COLUMN_COUNT;
                let session = present(row, at)?.then(|| session_at(row, at)).transpose()?;
                Ok((user, session))
            })
            .map_err(db_error)
        })
        .await
    }

    async fn session_is_valid(&self, user_id: u64, session_id: &str, now: i64) -> StoreResult<bool> {
        // Three integers compared in SQLite, none of the records' strings read or copied: a
        // token verification reads a fifth fewer instructions than with `session_with_user`.
        self.run(move |conn| {
            conn.query_row_cached(SESSION_IS_VALID, params![user_id as i64, session_id, now], |row| row.get(0))
                .map_err(db_error)
        })
        .await
    }

    async fn rotate_refresh(&self, r: Rotation) -> StoreResult<RotateOutcome> {
        self.write(move |tx| {
            if live_blacklist_entry(tx, &r.old_jti, r.now)?.is_some() {
                return Ok(RotateOutcome::Blacklisted);
            }
            let user: Option<(bool, i64)> = tx
                .query_row_cached("SELECT is_active, password_version FROM users WHERE id = ?1", [r.user_id as i64], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()
                .map_err(db_error)?;
            let user_version = match user {
                None => return Ok(RotateOutcome::UserMissing),
                Some((false, _)) => return Ok(RotateOutcome::UserInactive),
                Some((true, version)) => version as u64,
            };
            let session_version: Option<i64> = tx
                .query_row_cached(
                    "SELECT password_version FROM sessions WHERE id = ?1 AND user_id = ?2 AND refresh_jti = ?3 AND expires_at > ?4",
                    params![r.session_id, r.user_id as i64, r.old_jti, r.now],
                    |row| row.get(0),
                )
                .optional()
                .map_err(db_error)?;
            match session_version.map(|v| v as u64) {
                Some(v) if v != user_version => return Ok(RotateOutcome::SessionEnded),
                Some(v) if v != r.password_version => return Ok(RotateOutcome::PasswordVersion(v)),
                _ => {}
            }
            let rotated = tx
                .execute_cached(
                    "UPDATE sessions SET refresh_jti = ?4, expires_at = ?5, previous_jti = ?3, last_used_at = ?6
                     WHERE id = ?1 AND user_id = ?2 AND refresh_jti = ?3 AND expires_at > ?6",
                    params![r.session_id, r.user_id as i64, r.old_jti, r.new_jti, r.new_exp, r.now],
                )
                .map_err(db_error)?;
            if rotated == 0 {
                return Ok(RotateOutcome::SessionEnded);
            }
            put_blacklist(tx, &r.old_jti, r.user_id, &r.session_id, r.old_exp, r.now)?;
            Ok(RotateOutcome::Rotated)
        })
        .await
    }

    async fn logout(&self, token: SpentToken, now: i64) -> StoreResult<LogoutOutcome> {
        self.write(move |tx| {
            if live_blacklist_entry(tx, &token.jti, now)?.is_some() {
                return Ok(LogoutOutcome::AlreadyBlacklisted);
            }
            tx.execute_cached(
                "DELETE FROM sessions WHERE id = ?1 AND refresh_jti = ?2",
                params![token.session_id, token.jti],
            )
            .map_err(db_error)?;
            put_blacklist(tx, &token.jti, token.user_id, &token.session_id, token.exp, now)?;
            Ok(LogoutOutcome::LoggedOut)
        })
        .await
    }

    async fn start_session_spending(
        &self,
        session: Session,
        spent: BlacklistEntry,
        now: i64,
    ) -> StoreResult<RotateOutcome> {
        self.write(move |tx| {
            if live_blacklist_entry(tx, &spent.jti, now)?.is_some() {
                return Ok(RotateOutcome::Blacklisted);
            }
            let user: Option<(bool, i64)> = tx
                .query_row(
                    "SELECT is_active, password_version FROM users WHERE id = ?1",
                    [session.user_id as i64],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(db_error)?;
            match user {
                None => return Ok(RotateOutcome::UserMissing),
                Some((false, _)) => return Ok(RotateOutcome::UserInactive),
                Some((true, version)) if version as u64 != session.password_version => {
                    return Ok(RotateOutcome::PasswordVersion(version as u64))
                }
                Some(_) => {}
            }
            let exists: Option<()> = tx
                .query_row("SELECT 1 FROM sessions WHERE id = ?1", [&session.id], |_| Ok(()))
                .optional()
                .map_err(db_error)?;
            if exists.is_some() {
                return Ok(RotateOutcome::SessionEnded);
            }
            insert_session(tx, &session)?;
            put_blacklist(tx, &spent.jti, spent.user_id, &spent.session_id, spent.expires_at, spent.blacklisted_at)?;
            Ok(RotateOutcome::Rotated)
        })
        .await
    }

    async fn end_session(&self, session_id: &str) -> StoreResult<bool> {
        let session_id = session_id.to_string();
        self.write(move |tx| {
            let n = tx.execute_cached("DELETE FROM sessions WHERE id = ?1", [session_id]).map_err(db_error)?;
            Ok(n > 0)
        })
        .await
    }

    async fn end_sessions(&self, user_id: u64, keep: Option<&str>) -> StoreResult<u64> {
        let keep = keep.unwrap_or("").to_string();
        self.write(move |tx| {
            let n = tx
                .execute_cached("DELETE FROM sessions WHERE user_id = ?1 AND id != ?2", params![user_id as i64, keep])
                .map_err(db_error)?;
            Ok(n as u64)
        })
        .await
    }

    async fn user_sessions(&self, user_id: u64, now: i64) -> StoreResult<Vec<Session>> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ?1 AND expires_at > ?2"
                ))
                .map_err(db_error)?;
            let sessions = statement.query_map(params![user_id as i64, now], session_from_row).map_err(db_error)?;
            sessions.collect::<rusqlite::Result<Vec<Session>>>().map_err(db_error)
        })
        .await
    }

    async fn end_user_session(&self, user_id: u64, session_id: &str, now: i64) -> StoreResult<bool> {
        let session_id = session_id.to_string();
        self.write(move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM sessions WHERE id = ?1 AND user_id = ?2 AND expires_at > ?3",
                    params![session_id, user_id as i64, now],
                )
                .map_err(db_error)?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl BlacklistStore for SqliteStore {
    async fn blacklisted(&self, jti: &str, now: i64) -> StoreResult<Option<BlacklistEntry>> {
        let jti = jti.to_string();
        self.run(move |conn| live_blacklist_entry(conn, &jti, now)).await
    }

    async fn blacklist(&self, entry: BlacklistEntry, now: i64) -> StoreResult<bool> {
        self.write(move |tx| {
            if live_blacklist_entry(tx, &entry.jti, now)?.is_some() {
                return Ok(false);
            }
            put_blacklist(tx, &entry.jti, entry.user_id, &entry.session_id, entry.expires_at, entry.blacklisted_at)?;
            Ok(true)
        })
        .await
    }

    async fn user_and_blacklist_entry(
        &self,
        user_id: u64,
        jti: &str,
        now: i64,
    ) -> StoreResult<(Option<User>, Option<BlacklistEntry>)> {
        let jti = jti.to_string();
        self.run(move |conn| Ok((get_user(conn, user_id)?, live_blacklist_entry(conn, &jti, now)?))).await
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.write(move |tx| {
            let blacklist =
                tx.execute_cached("DELETE FROM blacklist WHERE expires_at <= ?1", [now]).map_err(db_error)?;
            let sessions = tx.execute_cached("DELETE FROM sessions WHERE expires_at <= ?1", [now]).map_err(db_error)?;
            let counters = tx.execute_cached("DELETE FROM throttle WHERE expires_at <= ?1", [now]).map_err(db_error)?;
            Ok((blacklist + sessions + counters) as u64)
        })
        .await
    }
}

fn counter_value(conn: &Connection, key: &str) -> StoreResult<u64> {
    let count: Option<i64> = conn
        .query_row_cached("SELECT count FROM throttle WHERE key = ?1", [key], |row| row.get(0))
        .optional()
        .map_err(db_error)?;
    Ok(count.unwrap_or(0).max(0) as u64)
}

fn usage(conn: &Connection, rule: &Rule, now: i64) -> StoreResult<Usage> {
    let (current, previous) = rule.keys(now);
    Ok(Usage { previous: counter_value(conn, &previous)?, current: counter_value(conn, &current)? })
}

/// How many windows on a late attempt is moved at most (each move is one window; a request is
/// not served minutes late).
const LATE_WINDOWS: usize = 3;

#[async_trait]
impl ThrottleStore for SqliteStore {
    async fn reserve(&self, rules: &[Rule], _known: Option<&[Usage]>, now: i64) -> StoreResult<Admission> {
        let rules = rules.to_vec();
        // One write transaction reads and counts: of parallel attempts, each sees the ones before it.
        // An attempt whose window the next one's attempts already count in was served late: it
        // counts in the next window (the earlier ones read this one as their closed previous one).
        self.write(move |tx| {
            let mut now = now;
            for _ in 0..LATE_WINDOWS {
                let next =
                    rules.iter().map(|r| counter_value(tx, &r.next_key(now))).collect::<StoreResult<Vec<_>>>()?;
                match throttle::served_late_at(&rules, &next, now) {
                    Some(later) => now = later,
                    None => break,
                }
            }
            let usages = rules.iter().map(|rule| usage(tx, rule, now)).collect::<StoreResult<Vec<_>>>()?;
            if let Some(retry_after) = throttle::refusal(&rules, &usages, now) {
                return Ok(Admission::Refused { retry_after });
            }
            let mut keys = Vec::with_capacity(rules.len());
            for rule in &rules {
                let key = rule.keys(now).0;
                tx.execute_cached(
                    "INSERT INTO throttle (key, count, expires_at) VALUES (?1, 1, ?2)
                     ON CONFLICT(key) DO UPDATE SET count = count + 1",
                    params![key, rule.expires_at(now)],
                )
                .map_err(db_error)?;
                keys.push(key);
            }
            Ok(Admission::Admitted(Reservation { keys }))
        })
        .await
    }

    async fn release(&self, reservation: &Reservation) -> StoreResult<()> {
        let keys = reservation.keys.clone();
        if keys.is_empty() {
            return Ok(());
        }
        self.write(move |tx| {
            for key in keys {
                tx.execute_cached("UPDATE throttle SET count = count - 1 WHERE key = ?1 AND count > 0", [key])
                    .map_err(db_error)?;
            }
            Ok(())
        })
        .await
    }

    async fn clear_counters(&self, keys: &[String]) -> StoreResult<()> {
        let keys = keys.to_vec();
        self.write(move |tx| {
            for key in keys {
                tx.execute("DELETE FROM throttle WHERE key = ?1", [key]).map_err(db_error)?;
            }
            Ok(())
        })
        .await
    }

    async fn login_lookup(&self, username: &str, rules: &[Rule], now: i64) -> StoreResult<(Option<User>, Vec<Usage>)> {
        let key = username_key(username);
        let rules = rules.to_vec();
        self.run(move |conn| {
            let user = conn
                .query_row_cached(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = ?1"),
                    [key],
                    user_from_row,
                )
                .optional()
                .map_err(db_error)?;
            let usages = rules.iter().map(|rule| usage(conn, rule, now)).collect::<StoreResult<Vec<_>>>()?;
            Ok((user, usages))
        })
        .await
    }
}

#[async_trait]
impl super::AccountStore for SqliteStore {
    async fn delete_user(&self, user: &User) -> StoreResult<()> {
        let (id, username, email, hash) =
            (user.id as i64, user.username.clone(), user.email.clone(), user.password_hash.clone());
        // One transaction: the user row holds its own claims (unique columns), its sessions and
        // blacklist entries go with it. AUTOINCREMENT never hands the id out again.
        self.write(move |tx| {
            let deleted = tx
                .execute(
                    "DELETE FROM users WHERE id = ?1 AND username = ?2 AND email = ?3 AND password = ?4",
                    params![id, username, email, hash],
                )
                .map_err(db_error)?;
            if deleted == 0 {
                return Err(match get_user(tx, id as u64)? {
                    Some(_) => StoreError::Stale,
                    None => StoreError::UserNotFound,
                });
            }
            tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id]).map_err(db_error)?;
            tx.execute("DELETE FROM blacklist WHERE user_id = ?1", [id]).map_err(db_error)?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_column_count_is_right() {
        assert_eq!(USER_COLUMNS.split(", ").count(), USER_COLUMN_COUNT);
    }
}
