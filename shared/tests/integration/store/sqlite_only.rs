//! What only the embedded (SQLite) store does: purge expired rows itself.

use accounts::store::sqlite::SqliteStore;

/// Expired rows are physically gone after a purge (the part of cleanup DynamoDB leaves to TTL).
#[tokio::test]
async fn purge_deletes_expired_rows() {
    use accounts::domain::model::{NewUser, Session, SpentToken};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    use accounts::store::{BlacklistStore, SessionStore, UserStore};
    let user = store
        .create_user(
            NewUser { username: "p".into(), email: String::new(), password_hash: "x".into(), date_joined: 0 },
            Session {
                id: "s1".into(),
                user_id: 0,
                refresh_jti: "j1".into(),
                created_at: 0,
                expires_at: 100,
                password_version: 0,
                ..Session::default()
            },
        )
        .await
        .unwrap();
    store
        .start_session(
            Session {
                id: "s2".into(),
                user_id: user.id,
                refresh_jti: "j2".into(),
                created_at: 0,
                expires_at: 500,
                password_version: 0,
                ..Session::default()
            },
            0,
        )
        .await
        .unwrap();
    store
        .logout(SpentToken { jti: "j2".into(), exp: 500, user_id: user.id, session_id: "s2".into() }, 10)
        .await
        .unwrap();
    // At 200: session s1 (exp 100) is expired; the blacklist entry j2 (exp 500) is live.
    assert_eq!(store.purge_expired(200).await.unwrap(), 1);
    assert!(store.blacklisted("j2", 200).await.unwrap().is_some());
    assert_eq!(store.purge_expired(600).await.unwrap(), 1);
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let rows: i64 = conn
        .query_row("SELECT (SELECT count(*) FROM sessions) + (SELECT count(*) FROM blacklist)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

/// A database of schema 2 (before sessions recorded their device): opened by this version, it
/// is migrated in place, its sessions read with defaults (last used when started) and rotate.
#[tokio::test]
async fn a_schema_2_database_is_migrated_and_its_sessions_still_read() {
    use accounts::domain::model::RotateOutcome;
    use accounts::store::SessionStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL,
                 username_key TEXT NOT NULL UNIQUE, username_skeleton TEXT UNIQUE, email TEXT NOT NULL DEFAULT '',
                 email_key TEXT UNIQUE, password TEXT NOT NULL, first_name TEXT NOT NULL DEFAULT '',
                 last_name TEXT NOT NULL DEFAULT '', nickname TEXT NOT NULL DEFAULT '',
                 signature TEXT NOT NULL DEFAULT '', avatar TEXT, is_active INTEGER NOT NULL DEFAULT 1,
                 date_joined INTEGER NOT NULL, last_login INTEGER, password_version INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, refresh_jti TEXT NOT NULL,
                 created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
                 password_version INTEGER NOT NULL DEFAULT 0);
             INSERT INTO users (username, username_key, username_skeleton, password, date_joined)
                 VALUES ('old', 'old', 'old', 'x', 0);
             INSERT INTO sessions VALUES ('s-old', 1, 'r1', 1700000000, 2000000000, 0);
             PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let store = SqliteStore::open_file(&path).unwrap();
    let (user, session) = store.session_with_user(1, "s-old", 1_700_000_001).await.unwrap();
    assert_eq!(user.unwrap().username, "old");
    let expected = super::fixtures::older_session("s-old", 1, "r1");
    assert_eq!(session.as_ref(), Some(&expected));
    assert_eq!(store.user_sessions(1, 1_700_000_001).await.unwrap(), vec![expected.clone()]);
    let rotation = super::fixtures::rotation(&expected, "r1", "r2", 1_700_000_100);
    assert_eq!(store.rotate_refresh(rotation).await.unwrap(), RotateOutcome::Rotated);
    let session = store.session_with_user(1, "s-old", 1_700_000_101).await.unwrap().1.unwrap();
    assert_eq!((session.previous_jti.as_deref(), session.last_used_at), (Some("r1"), 1_700_000_100));
    let version: i64 =
        rusqlite::Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 3);
}

/// Writers of one process queue on the store's writer instead of meeting at SQLite's write lock,
/// whose busy handler sleeps between tries: that sleeping was the refresh benchmark's p99
/// (53 ms). Many parallel writes on a multi-threaded runtime never wait for the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_writes_of_one_process_never_wait_for_the_lock() {
    use accounts::store::SessionStore;
    let (_dir, store, user) = store_with_user("w").await;
    let before = accounts::store::sqlite::lock_waits();
    let writes: Vec<_> = (0..400)
        .map(|i| {
            let store = store.clone();
            let session = live_session(format!("s{i}"), user.id);
            tokio::spawn(async move { store.start_session(session, i).await })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }
    assert_eq!(accounts::store::sqlite::lock_waits() - before, 0, "a write of this process waited for SQLite's lock");
    let (_, found) = store.session_with_user(user.id, "s399", 0).await.unwrap();
    assert!(found.is_some());
}

/// The WAL stays small under sustained writes with reads going on: its checkpoint completes and
/// it restarts. (A checkpointer thread beside the writer never caught up: the WAL reached
/// 1.5 GB in the benchmark, and 70 MB here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_wal_stays_small_under_sustained_writes() {
    use accounts::store::SessionStore;
    let (dir, store, user) = store_with_user("c").await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                store.session_with_user(user.id, "first", 0).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..1500 {
                    store.start_session(live_session(format!("s{w}-{i}"), user.id), i).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.await.unwrap();
    let wal = std::fs::metadata(dir.path().join("accounts.sqlite3-wal")).unwrap().len();
    assert!(wal < 12 << 20, "the WAL is {wal} bytes after 6,000 writes");
}

/// Writes that queue while one runs commit together (group commit), each in its own savepoint:
/// a write that fails after writing undoes only itself. Here half of 40 parallel registrations
/// fail at their second insert (the first session's id is taken) after the user row went in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_write_among_parallel_ones_leaves_nothing_and_the_others_stay() {
    use accounts::domain::model::{NewUser, Session};
    use accounts::store::UserStore;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
    let session =
        |id: &str| Session { id: id.into(), refresh_jti: "j".into(), expires_at: i64::MAX, ..Session::default() };
    let user =
        |name: String| NewUser { username: name, email: String::new(), password_hash: "x".into(), date_joined: 0 };
    store.create_user(user("first".into()), session("taken")).await.unwrap();
    let writes: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            let session_id = if i % 2 == 0 { "taken".to_string() } else { format!("s{i}") };
            tokio::spawn(async move { store.create_user(user(format!("u{i}")), session(&session_id)).await })
        })
        .collect();
    for (i, write) in writes.into_iter().enumerate() {
        let result = write.await.unwrap();
        assert_eq!(result.is_ok(), i % 2 == 1, "u{i}: {result:?}");
    }
    for i in 0..40 {
        let found = store.find_user_by_username(&format!("u{i}")).await.unwrap();
        assert_eq!(
            found.is_some(),
            i % 2 == 1,
            "u{i} after its write {}",
            if i % 2 == 1 { "succeeded" } else { "failed" }
        );
    }
}

/// Reads see the commits of another connection (another process, an admin tool) at once, while
/// this store writes nothing itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_another_connections_commits_at_once() {
    use accounts::store::{SessionStore, UserStore};
    let (dir, store, user) = store_with_user("a").await;
    let other = rusqlite::Connection::open(dir.path().join("accounts.sqlite3")).unwrap();
    for i in 0..20 {
        let nickname = format!("n{i}");
        other
            .execute("UPDATE users SET nickname = ?1 WHERE id = ?2", rusqlite::params![nickname, user.id as i64])
            .unwrap();
        assert_eq!(store.get_user(user.id).await.unwrap().unwrap().nickname, nickname);
        other.execute("UPDATE sessions SET expires_at = ?1 WHERE id = 'first'", [i]).unwrap();
        let (_, session) = store.session_with_user(user.id, "first", 100).await.unwrap();
        assert!(session.is_none(), "the session the other connection ended is still read");
        other.execute("UPDATE sessions SET expires_at = ?1 WHERE id = 'first'", [i64::MAX]).unwrap();
        assert!(store.session_with_user(user.id, "first", 100).await.unwrap().1.is_some());
    }
}

/// A session of an older password is not valid, even before the password change has deleted it
/// (a change from another process, say `tools/accounts-admin`, that only raised the version): the
/// narrow read of a token verification compares the versions as `Session::is_valid_for` does.
#[tokio::test]
async fn a_session_of_an_older_password_is_not_valid() {
    use accounts::store::SessionStore;
    let (dir, store, user) = store_with_user("a").await;
    assert!(store.session_is_valid(user.id, "first", 100).await.unwrap());
    let other = rusqlite::Connection::open(dir.path().join("accounts.sqlite3")).unwrap();
    other.execute("UPDATE users SET password_version = password_version + 1 WHERE id = ?1", [user.id as i64]).unwrap();
    assert!(!store.session_is_valid(user.id, "first", 100).await.unwrap());
    let (user, session) = store.session_with_user(user.id, "first", 100).await.unwrap();
    assert!(!session.unwrap().is_valid_for(&user.unwrap(), 100), "the records agree");
}

/// Another process's writes (`tools/import-users`, the benchmark's token minter) restart the WAL
/// while the server is open and idle. The store's read-lock anchor (`store::sqlite`'s
/// `ReadLockAnchor`) lets go when it sees them; an anchor that held on left a 3 GB WAL after the
/// benchmark minted 162,585 sessions, and 35 MB here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_writes_keep_the_wal_small_while_the_store_idles() {
    let (dir, store, user) = store_with_user("i").await;
    let other = rusqlite::Connection::open(dir.path().join("accounts.sqlite3")).unwrap();
    for i in 0..2000 {
        mint_session(&other, user.id, i);
    }
    let wal = std::fs::metadata(dir.path().join("accounts.sqlite3-wal")).unwrap().len();
    assert!(wal < 12 << 20, "the WAL is {wal} bytes after 2,000 commits of another connection");
    drop(store);
}

/// The same burst while the store serves reads on both workers: every commit is read at once,
/// and the WAL still restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_writes_during_reads_are_read_at_once_and_keep_the_wal_small() {
    use accounts::store::SessionStore;
    let (dir, store, user) = store_with_user("r").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    assert!(store.session_with_user(user.id, "first", 100).await.unwrap().1.is_some());
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        })
        .collect();
    let other = rusqlite::Connection::open(dir.path().join("accounts.sqlite3")).unwrap();
    for i in 0..2000 {
        mint_session(&other, user.id, i);
        let (_, minted) = store.session_with_user(user.id, &format!("minted-{i}"), 100).await.unwrap();
        assert!(minted.is_some(), "minted-{i} is not read after its commit");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
    let wal = std::fs::metadata(dir.path().join("accounts.sqlite3-wal")).unwrap().len();
    assert!(wal < 12 << 20, "the WAL is {wal} bytes after 2,000 commits of another connection");
}

/// The anchor holds a read mark of the WAL after the store's own writes (the readers' locks then
/// cost no `fcntl`); it moves at its next look (every 50 ms, `ANCHOR_POLL`), so a checkpoint
/// that waits for readers finishes; it stays away while another connection commits, and comes
/// back once that has been quiet for a second (`ANCHOR_BACK_OFF`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_lock_anchor_stays_away_while_another_process_writes() {
    use accounts::store::UserStore;
    let (dir, store, user) = store_with_user("t").await;
    let other = rusqlite::Connection::open(dir.path().join("accounts.sqlite3")).unwrap();
    let truncate = |wait_ms: u64| {
        other.busy_timeout(std::time::Duration::from_millis(wait_ms)).unwrap();
        other.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)).unwrap()
    };
    let write_own = |n: u32| {
        let update = accounts::domain::model::UserUpdate { nickname: Some(format!("own-{n}")), ..Default::default() };
        store.update_user(user.id, update)
    };
    assert_eq!(truncate(0), 1, "busy: the anchor holds a read mark of the WAL after the store's write");
    let started = std::time::Instant::now();
    assert_eq!(truncate(2000), 0, "a checkpoint still waits for the anchor after {:?}", started.elapsed());
    assert_eq!(std::fs::metadata(dir.path().join("accounts.sqlite3-wal")).unwrap().len(), 0);

    mint_session(&other, user.id, 0);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    write_own(1).await.unwrap();
    assert_eq!(truncate(0), 0, "the anchor holds a read mark while another connection writes");

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    write_own(2).await.unwrap();
    assert_eq!(truncate(0), 1, "the anchor is still away after another connection stayed quiet");
}

/// A commit of another connection (another process): a session the store did not write.
fn mint_session(other: &rusqlite::Connection, user_id: u64, i: u32) {
    other
        .execute(
            "INSERT INTO sessions (id, user_id, refresh_jti, created_at, expires_at) VALUES (?1, ?2, 'j', 0, ?3)",
            rusqlite::params![format!("minted-{i}"), user_id as i64, i64::MAX],
        )
        .unwrap();
}

/// A session that never expires.
fn live_session(id: String, user_id: u64) -> accounts::domain::model::Session {
    accounts::domain::model::Session {
        id,
        user_id,
        refresh_jti: "j".into(),
        expires_at: i64::MAX,
        ..Default::default()
    }
}

/// A new store (its folder kept alive by the returned handle) with one user and their session "first".
async fn store_with_user(
    name: &str,
) -> (tempfile::TempDir, std::sync::Arc<SqliteStore>, accounts::domain::model::User) {
    use accounts::store::UserStore;
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
    let new_user = accounts::domain::model::NewUser {
        username: name.into(),
        email: String::new(),
        password_hash: "x".into(),
        date_joined: 0,
    };
    let user = store.create_user(new_user, live_session("first".into(), 0)).await.unwrap();
    (dir, store, user)
}
