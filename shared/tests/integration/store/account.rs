//! `AccountStore`: deleting a user with its claims in one atomic write, only as it was read.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;

use super::backends;
use super::fixtures::*;

conformance!([sqlite, dynamodb] {
    async fn a_deleted_user_is_gone_with_its_claims_and_its_sessions_are_refused(store: SharedStore) {
        let (user, first) = register(&store, "Leaving", "leaving@example.com").await;
        let second = session("leaving-s2", user.id, "leaving-r2");
        store.start_session(second.clone(), NOW).await.unwrap();
        let (other, other_session) = register(&store, "staying", "staying@example.com").await;

        store.delete_user(&user).await.unwrap();

        assert_eq!(store.get_user(user.id).await.unwrap(), None);
        assert_eq!(store.find_user_by_username("leaving").await.unwrap(), None);
        assert!(!store.email_in_use("LEAVING@example.com").await.unwrap());
        assert!(store.find_active_users_by_email("leaving@example.com").await.unwrap().is_empty());
        for s in [&first, &second] {
            // Whatever is left of a session item reads without its user: every use is refused.
            let (u, _) = store.session_with_user(user.id, &s.id, NOW).await.unwrap();
            assert_eq!(u, None);
            let outcome = store.rotate_refresh(rotation(s, &s.refresh_jti, "new", NOW)).await.unwrap();
            assert_ne!(outcome, RotateOutcome::Rotated, "{}", s.id);
            let started = store.start_session(session("late", user.id, "late-r"), NOW).await;
            assert!(matches!(started, Err(StoreError::UserNotFound)), "{started:?}");
        }
        // The housekeeping after the atomic write finds nothing or the left-overs, never more.
        store.end_sessions(user.id, None).await.unwrap();
        assert_eq!(live_session(&store, &first, NOW).await, None);
        // The others are untouched.
        assert_eq!(store.get_user(other.id).await.unwrap(), Some(other.clone()));
        assert!(live_session(&store, &other_session, NOW).await.is_some());

        // The name, its look-alikes and the address are free again; the id is never reused.
        let (again, _) = register(&store, "LEAVING", "leaving@example.com").await;
        assert!(again.id > other.id, "a new id: {} after {}", again.id, other.id);
        store.delete_user(&again).await.unwrap();
        let (look_alike, _) = register(&store, "l\u{0435}aving", "").await;
        assert!(look_alike.id > again.id);
    }

    async fn a_user_changed_since_it_was_read_is_not_deleted(store: SharedStore) {
        let (user, first) = register(&store, "changing", "changing@example.com").await;
        let renamed = store
            .update_user(user.id, UserUpdate { username: Some("changed".into()), ..UserUpdate::default() })
            .await
            .unwrap();
        let err = store.delete_user(&user).await.unwrap_err();
        assert!(matches!(err, StoreError::Stale), "{err:?}");
        assert_eq!(store.get_user(user.id).await.unwrap(), Some(renamed.clone()));
        assert!(store.find_user_by_username("changed").await.unwrap().is_some());
        assert!(store.email_in_use("changing@example.com").await.unwrap());
        assert!(live_session(&store, &first, NOW).await.is_some());

        // A new password since the read: not deleted either (the caller checked the old one).
        let replacement = PasswordReplacement {
            user_id: user.id,
            expected_hash: HASH.into(),
            new_hash: "$argon2id$new".into(),
            new_version: true,
            keep_session: None,
        };
        store.replace_password_hash(replacement).await.unwrap();
        let err = store.delete_user(&renamed).await.unwrap_err();
        assert!(matches!(err, StoreError::Stale), "{err:?}");

        let current = store.get_user(user.id).await.unwrap().unwrap();
        store.delete_user(&current).await.unwrap();
        let err = store.delete_user(&current).await.unwrap_err();
        assert!(matches!(err, StoreError::UserNotFound), "{err:?}");
        assert_eq!(store.find_user_by_username("changed").await.unwrap(), None);
    }

    async fn a_user_without_an_email_is_deleted_too(store: SharedStore) {
        let (user, _) = register(&store, "noaddress", "").await;
        store.delete_user(&user).await.unwrap();
        assert_eq!(store.get_user(user.id).await.unwrap(), None);
        register(&store, "noaddress", "").await;
    }
});

/// Nothing is half-deleted when the write fails midway: on SQLite the session rows refuse to go
/// (a trigger), after the user row went in the same transaction.
#[tokio::test]
async fn a_failed_deletion_on_sqlite_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = accounts::store::sqlite::SqliteStore::open(dir.path()).unwrap();
    let store: SharedStore = Arc::new(store);
    let (user, first) = register(&store, "fragile", "fragile@example.com").await;
    let raw = rusqlite::Connection::open(dir.path().join("accounts.sqlite3")).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER fault BEFORE DELETE ON sessions BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
    )
    .unwrap();
    let err = store.delete_user(&user).await.unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert_whole(&store, &user, &first).await;
    raw.execute_batch("DROP TRIGGER fault;").unwrap();
    store.delete_user(&user).await.unwrap();
    assert_eq!(store.get_user(user.id).await.unwrap(), None);
}

/// On DynamoDB the e-mail claim is (corruptly) another user's: the transaction is refused, and
/// neither the user nor its username claim went.
#[tokio::test]
async fn a_failed_deletion_on_dynamodb_deletes_nothing() {
    let (store, client) = testkit::dynamo::fresh_dynamo().await;
    let users = store.tables().users.clone();
    let store: SharedStore = Arc::new(store);
    let (user, first) = register(&store, "fragile", "fragile@example.com").await;
    let foreign = HashMap::from([
        ("pk".to_string(), AttributeValue::S("EMAIL#fragile@example.com".into())),
        ("user_id".to_string(), AttributeValue::N("999999".into())),
    ]);
    client.put_item().table_name(&users).set_item(Some(foreign)).send().await.unwrap();
    let err = store.delete_user(&user).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert_whole(&store, &user, &first).await;
}

async fn assert_whole(store: &SharedStore, user: &User, first: &Session) {
    assert_eq!(store.get_user(user.id).await.unwrap().as_ref(), Some(user));
    assert_eq!(store.find_user_by_username(&user.username).await.unwrap().as_ref(), Some(user));
    assert!(store.email_in_use(&user.email).await.unwrap());
    assert!(live_session(store, first, NOW).await.is_some(), "the session is still usable");
    let err = store.create_user(new_user(&user.username, ""), session("x", 0, "x")).await.unwrap_err();
    assert!(matches!(err, StoreError::UsernameTaken), "{err:?}");
}
