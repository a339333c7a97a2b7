//! The DynamoDB backend: three tables, every multi-record change in one `TransactWriteItems`.
//!
//! - users table (partition key `pk`): `USER#<id>` (the user), `USERNAME#<username_key>`,
//!   `SKELETON#<confusable skeleton>` and `EMAIL#<lowercased e-mail>` (uniqueness claims holding
//!   `user_id`), `COUNTER#user_id` (the id counter, attribute `value`);
//! - sessions table (partition key `session_id`, GSI `by_user` on `user_id`, TTL on `expires_at`);
//! - blacklist table (partition key `jti`, TTL on `expires_at`).
//!
//! TTL deletes lazily (up to days late), so every read compares `expires_at` with `now` and every
//! condition that guards a blacklist entry accepts an expired one as absent.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex, IndexStatus,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put, ReturnValue, ScalarAttributeType,
    TableStatus, TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use super::{Admission, BlacklistStore, Reservation, SessionStore, StoreError, StoreResult, ThrottleStore, UserStore};
use crate::config::DynamoTables;
use crate::domain::model::{
    username_key, BlacklistEntry, LogoutOutcome, NewUser, PasswordReplacement, RotateOutcome, Rotation, Session,
    SpentToken, User, UserUpdate,
};
use crate::domain::throttle::{self, Rule, Usage};
use crate::domain::user::username_skeleton;

// One file per store trait, as in `store/mod.rs`, beside the item codecs, the error mapping and
// the table schema; every part is an `impl DynamoStore` block over the shared helpers below.
mod counters;
mod deletion;
mod errors;
mod items;
mod schema;
mod sessions;
mod users;

use errors::*;
use items::*;

type Item = HashMap<String, AttributeValue>;

/// The users table's partition key.
const PK: &str = "pk";
/// Partition key of the throttle table: counter name @ window start.
const THROTTLE_KEY: &str = "key";
const COUNTER_KEY: &str = "COUNTER#user_id";
/// The sessions table's index on `user_id`.
pub const BY_USER_INDEX: &str = "by_user";
/// The TTL attribute of the sessions and blacklist tables.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// The password version of a user and of a session (`User::password_version`).
const PASSWORD_VERSION: &str = "password_version";

/// How often a transaction cancelled only by `TransactionConflict` (another transaction on the
/// same items) is tried again before giving up with `Unavailable`.
const CONFLICT_ATTEMPTS: u32 = 5;

/// Cancellation reason codes of `TransactWriteItems`.
const CONDITION_FAILED: &str = "ConditionalCheckFailed";
const TRANSACTION_CONFLICT: &str = "TransactionConflict";

/// Builds a DynamoDB client from the usual AWS configuration chain, with bounded timeouts and one
/// retry, so a broken backend fails a request in seconds. `endpoint` points it at an emulator.
pub async fn client(endpoint: Option<&str>) -> Client {
    let timeouts = crate::aws::Timeouts { attempt: Duration::from_secs(2), operation: Duration::from_secs(5) };
    Client::new(&crate::aws::sdk_config(endpoint, timeouts).await)
}

#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    tables: DynamoTables,
}

impl DynamoStore {
    pub fn new(client: Client, tables: DynamoTables) -> Self {
        DynamoStore { client, tables }
    }

    pub fn tables(&self) -> &DynamoTables {
        &self.tables
    }

    /// One `BatchGetItem` (retrying keys DynamoDB leaves unprocessed): table → items found.
    /// The user and (when `other` names one) an item of another table by its key, read together
    /// in one strongly consistent `BatchGetItem`: what every authenticated request reads.
    async fn user_and_item(
        &self,
        user_id: u64,
        other: Option<(&String, HashMap<String, AttributeValue>)>,
    ) -> StoreResult<(Option<User>, Option<Item>)> {
        let consistent = |key| built(KeysAndAttributes::builder().keys(key).consistent_read(true).build());
        let mut request = HashMap::from([(self.tables.users.clone(), consistent(items::user_key(user_id))?)]);
        if let Some((table, key)) = &other {
            request.insert((*table).clone(), consistent(key.clone())?);
        }
        let (mut user, mut found) = (None, None);
        for (table, items) in self.batch_get(request).await? {
            for item in items {
                if table == self.tables.users {
                    user = Some(items::user_from_item(&item)?);
                } else if other.as_ref().is_some_and(|(t, _)| **t == table) {
                    found = Some(item);
                }
            }
        }
        Ok((user, found))
    }

    async fn batch_get(
        &self,
        mut request: HashMap<String, KeysAndAttributes>,
    ) -> StoreResult<HashMap<String, Vec<Item>>> {
        let mut found: HashMap<String, Vec<Item>> = HashMap::new();
        for attempt in 0..10u64 {
            let out = self.client.batch_get_item().set_request_items(Some(request)).send().await.map_err(sdk_error)?;
            for (table, items) in out.responses.unwrap_or_default() {
                found.entry(table).or_default().extend(items);
            }
            request = out.unprocessed_keys.unwrap_or_default();
            request.retain(|_, keys| !keys.keys().is_empty());
            if request.is_empty() {
                return Ok(found);
            }
            tokio::time::sleep(Duration::from_millis(20 * (attempt + 1))).await;
        }
        Err(StoreError::Unavailable("BatchGetItem kept leaving keys unprocessed".into()))
    }

    // ----- reads ---------------------------------------------------------------------------

    async fn get(&self, table: &str, key: Item) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(out.item)
    }

    // ----- writes --------------------------------------------------------------------------

    /// Runs a transaction. `Ok(Err(codes))` when it was cancelled: one reason code per item in
    /// order (`"None"`, `"ConditionalCheckFailed"`, ...), or an empty list when the backend gave no
    /// reasons. Cancellations caused only by conflicts with other transactions are retried.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> StoreResult<Result<(), Vec<String>>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                // Makes the SDK's own retry of a timed-out attempt idempotent: a transaction that
                // went through is not run (and then reported as a failed condition) a second time.
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Ok(())),
                Err(err) => err,
            };
            let codes: Vec<String> = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None").to_string()).collect()
                }
                Some(e) if e.code() == Some("TransactionConflictException") => {
                    vec![TRANSACTION_CONFLICT.to_string()]
                }
                _ => return Err(sdk_error(err)),
            };
            let conflict_only =
                codes.iter().any(|c| c == TRANSACTION_CONFLICT) && !codes.iter().any(|c| c == CONDITION_FAILED);
            if conflict_only && attempt < CONFLICT_ATTEMPTS {
                let jitter: u64 = rand::random_range(0..20);
                tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt) + jitter)).await;
                continue;
            }
            return Ok(Err(codes));
        }
    }
}
