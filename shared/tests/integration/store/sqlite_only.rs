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
