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

/// Writers of one process queue on the store's writer instead of meeting at SQLite's write lock,
/// whose busy handler sleeps between tries: that sleeping was the refresh benchmark's p99
/// (53 ms). Many parallel writes on a multi-threaded runtime never wait for the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_writes_of_one_process_never_wait_for_the_lock() {
    use accounts::domain::model::{NewUser, Session};
    use accounts::store::{SessionStore, UserStore};
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
    let session = |id: String, user_id| Session {
        id,
        user_id,
        refresh_jti: "j".into(),
        created_at: 0,
        expires_at: i64::MAX,
        password_version: 0,
    };
    let user = store
        .create_user(
            NewUser { username: "w".into(), email: String::new(), password_hash: "x".into(), date_joined: 0 },
            session("first".into(), 0),
        )
        .await
        .unwrap();
    let before = accounts::store::sqlite::lock_waits();
    let writes: Vec<_> = (0..400)
        .map(|i| {
            let store = store.clone();
            let session = session(format!("s{i}"), user.id);
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
