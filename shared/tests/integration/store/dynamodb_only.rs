//! What only the DynamoDB store does: create its tables, fail fast and cleanly on a broken
//! backend or odd items (moto at `DYNAMODB_ENDPOINT`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use accounts::store::dynamodb::{self, DynamoStore};
use accounts::store::{StoreError, UserStore};
use aws_sdk_dynamodb::types::AttributeValue;
use testkit::dynamo::{fake_aws_environment, fresh_client, fresh_dynamo, unique_tables};

// ----- DynamoDB specifics --------------------------------------------------------------------

#[tokio::test]
async fn create_tables_is_idempotent_and_sets_up_index_and_ttl() {
    let (store, client) = fresh_dynamo().await;
    store.create_tables().await.expect("second create_tables");
    let tables = store.tables().clone();

    let sessions = client.describe_table().table_name(&tables.sessions).send().await.unwrap();
    let indexes = sessions.table().unwrap().global_secondary_indexes();
    assert!(
        indexes.iter().any(|i| i.index_name() == Some(dynamodb::BY_USER_INDEX)),
        "sessions table has the by_user index"
    );
    for table in [&tables.sessions, &tables.blacklist] {
        let ttl = client.describe_time_to_live().table_name(table).send().await.unwrap();
        let description = ttl.time_to_live_description().unwrap();
        assert_eq!(description.attribute_name(), Some(dynamodb::TTL_ATTRIBUTE), "{table}");
    }
}

#[tokio::test]
async fn unreachable_backend_is_unavailable_quickly() {
    fake_aws_environment();
    // Nothing listens on the discard port: connections are refused.
    let client = dynamodb::client(Some("http://127.0.0.1:9")).await;
    let store = DynamoStore::new(client, unique_tables());
    let started = Instant::now();
    let err = store.get_user(1).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn missing_table_is_a_backend_error() {
    let client = fresh_client().await;
    let store = DynamoStore::new(client, unique_tables());
    let err = store.get_user(1).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}

#[tokio::test]
async fn odd_items_are_backend_errors_not_panics() {
    let (store, client) = fresh_dynamo().await;
    let users = store.tables().users.clone();
    let put = |item: HashMap<String, AttributeValue>| client.put_item().table_name(&users).set_item(Some(item)).send();
    // A user item without most attributes.
    put(HashMap::from([
        ("pk".to_string(), AttributeValue::S("USER#1".into())),
        ("id".to_string(), AttributeValue::N("1".into())),
    ]))
    .await
    .unwrap();
    // A user item with a wrongly typed id, and a claim pointing at it.
    put(HashMap::from([
        ("pk".to_string(), AttributeValue::S("USER#2".into())),
        ("id".to_string(), AttributeValue::S("two".into())),
    ]))
    .await
    .unwrap();
    put(HashMap::from([
        ("pk".to_string(), AttributeValue::S("USERNAME#broken".into())),
        ("user_id".to_string(), AttributeValue::S("2".into())),
    ]))
    .await
    .unwrap();

    for err in [
        store.get_user(1).await.unwrap_err(),
        store.get_user(2).await.unwrap_err(),
        store.find_user_by_username("broken").await.unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    }
}

/// A session item written before sessions recorded their device (no `device`, `ip`,
/// `last_used_at`, `previous_jti`, `password_version`): it reads with defaults, is listed, and
/// rotates (the rotation adds the new attributes).
#[tokio::test]
async fn sessions_written_by_older_versions_still_read() {
    use accounts::domain::model::{NewUser, RotateOutcome, Session};
    use accounts::store::SessionStore;
    let (store, client) = fresh_dynamo().await;
    let first =
        Session { id: "new".into(), refresh_jti: "new-r1".into(), expires_at: 2_000_000_000, ..Session::default() };
    let user = store
        .create_user(
            NewUser { username: "old".into(), email: String::new(), password_hash: "x".into(), date_joined: 0 },
            first,
        )
        .await
        .unwrap();
    let old_item = HashMap::from([
        ("session_id".to_string(), AttributeValue::S("old".into())),
        ("user_id".to_string(), AttributeValue::N(user.id.to_string())),
        ("refresh_jti".to_string(), AttributeValue::S("old-r1".into())),
        ("created_at".to_string(), AttributeValue::N("1700000000".into())),
        ("expires_at".to_string(), AttributeValue::N("2000000000".into())),
    ]);
    client.put_item().table_name(&store.tables().sessions).set_item(Some(old_item)).send().await.unwrap();
    let (_, session) = store.session_with_user(user.id, "old", 1_700_000_001).await.unwrap();
    let expected = super::fixtures::older_session("old", user.id, "old-r1");
    assert_eq!(session.as_ref(), Some(&expected));
    let listed = store.user_sessions(user.id, 1_700_000_001).await.unwrap();
    assert!(listed.contains(&expected), "{listed:?}");
    let rotation = super::fixtures::rotation(&expected, "old-r1", "old-r2", 1_700_000_100);
    assert_eq!(store.rotate_refresh(rotation).await.unwrap(), RotateOutcome::Rotated);
    let (_, session) = store.session_with_user(user.id, "old", 1_700_000_101).await.unwrap();
    let session = session.unwrap();
    assert_eq!((session.previous_jti.as_deref(), session.last_used_at), (Some("old-r1"), 1_700_000_100));
}
