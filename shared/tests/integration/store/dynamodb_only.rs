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
