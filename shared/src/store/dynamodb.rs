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
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    IndexStatus, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    ReturnValue, ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use super::{
    Admission, BlacklistStore, Reservation, SessionStore, StoreError, StoreResult, ThrottleStore,
    UserStore,
};
use crate::config::DynamoTables;
use crate::domain::model::{
    username_key, BlacklistEntry, LogoutOutcome, NewUser, PasswordReplacement, RotateOutcome,
    Rotation, Session, SpentToken, User, UserUpdate,
};
use crate::domain::throttle::{self, Rule, Usage};
use crate::domain::user::username_skeleton;

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

    /// Creates the three tables when missing (on-demand billing, the `by_user` index), waits
    /// until they are active and turns on TTL for sessions and blacklist. For tests and local
    /// setups: the cloud gets its tables from `template.yaml`.
    pub async fn create_tables(&self) -> StoreResult<()> {
        let string_key = |table: &str, key: &str| -> StoreResult<_> {
            Ok(self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(built(
                    AttributeDefinition::builder()
                        .attribute_name(key)
                        .attribute_type(ScalarAttributeType::S)
                        .build(),
                )?)
                .key_schema(built(
                    KeySchemaElement::builder()
                        .attribute_name(key)
                        .key_type(KeyType::Hash)
                        .build(),
                )?))
        };
        let users = string_key(&self.tables.users, PK)?;
        let blacklist = string_key(&self.tables.blacklist, "jti")?;
        let throttle = string_key(&self.tables.throttle, THROTTLE_KEY)?;
        let sessions = string_key(&self.tables.sessions, "session_id")?
            .attribute_definitions(built(
                AttributeDefinition::builder()
                    .attribute_name("user_id")
                    .attribute_type(ScalarAttributeType::N)
                    .build(),
            )?)
            .global_secondary_indexes(built(
                GlobalSecondaryIndex::builder()
                    .index_name(BY_USER_INDEX)
                    .key_schema(built(
                        KeySchemaElement::builder()
                            .attribute_name("user_id")
                            .key_type(KeyType::Hash)
                            .build(),
                    )?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build(),
            )?);
        for request in [users, sessions, blacklist, throttle] {
            match request.send().await {
                Ok(_) => {}
                Err(e) if error_code(&e) == Some("ResourceInUseException") => {}
                Err(e) => return Err(sdk_error(e)),
            }
        }
        for table in [
            &self.tables.users,
            &self.tables.sessions,
            &self.tables.blacklist,
            &self.tables.throttle,
        ] {
            self.wait_active(table).await?;
        }
        for table in [&self.tables.sessions, &self.tables.blacklist, &self.tables.throttle] {
            let ttl = self
                .client
                .describe_time_to_live()
                .table_name(table)
                .send()
                .await
                .map_err(sdk_error)?;
            let status = ttl
                .time_to_live_description()
                .and_then(|d| d.time_to_live_status());
            if matches!(
                status,
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            ) {
                continue;
            }
            self.client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(built(
                    TimeToLiveSpecification::builder()
                        .enabled(true)
                        .attribute_name(TTL_ATTRIBUTE)
                        .build(),
                )?)
                .send()
                .await
                .map_err(sdk_error)?;
        }
        Ok(())
    }

    /// One `BatchGetItem` (retrying keys DynamoDB leaves unprocessed): table → items found.
    async fn batch_get(
        &self,
        mut request: HashMap<String, KeysAndAttributes>,
    ) -> StoreResult<HashMap<String, Vec<Item>>> {
        let mut found: HashMap<String, Vec<Item>> = HashMap::new();
        for attempt in 0..10u64 {
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(sdk_error)?;
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
        Err(StoreError::Unavailable(
            "BatchGetItem kept leaving keys unprocessed".into(),
        ))
    }

    async fn wait_active(&self, table: &str) -> StoreResult<()> {
        for _ in 0..300 {
            let out = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(sdk_error)?;
            let description = out.table();
            let table_active =
                description.and_then(|t| t.table_status()) == Some(&TableStatus::Active);
            let indexes_active = description
                .map(|t| t.global_secondary_indexes())
                .unwrap_or_default()
                .iter()
                .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
            if table_active && indexes_active {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(StoreError::Unavailable(format!(
            "table {table} did not become active"
        )))
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

    async fn claim_owner(&self, claim: String) -> StoreResult<Option<u64>> {
        match self.get(&self.tables.users, pk(claim)).await? {
            Some(item) => Ok(Some(number(&item, "user_id")?)),
            None => Ok(None),
        }
    }

    // ----- writes --------------------------------------------------------------------------

    /// Runs a transaction. `Ok(Err(codes))` when it was cancelled: one reason code per item in
    /// order (`"None"`, `"ConditionalCheckFailed"`, ...), or an empty list when the backend gave no
    /// reasons. Cancellations caused only by conflicts with other transactions are retried.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> StoreResult<Result<(), Vec<String>>> {
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
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None").to_string())
                    .collect(),
                Some(e) if e.code() == Some("TransactionConflictException") => {
                    vec![TRANSACTION_CONFLICT.to_string()]
                }
                _ => return Err(sdk_error(err)),
            };
            let conflict_only = codes.iter().any(|c| c == TRANSACTION_CONFLICT)
                && !codes.iter().any(|c| c == CONDITION_FAILED);
            if conflict_only && attempt < CONFLICT_ATTEMPTS {
                let jitter: u64 = rand::random_range(0..20);
                tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt) + jitter)).await;
                continue;
            }
            return Ok(Err(codes));
        }
    }

    /// The next user id from the atomic counter.
    async fn next_id(&self) -> StoreResult<u64> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .set_key(Some(pk(COUNTER_KEY.to_string())))
            .update_expression("ADD #value :one")
            .expression_attribute_names("#value", "value")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(sdk_error)?;
        let attributes = out.attributes.unwrap_or_default();
        number(&attributes, "value")
    }

    /// The puts that write a user with its claims, in this order: the user, the username claim,
    /// the skeleton claim, the e-mail claim (only for a non-empty e-mail).
    fn user_puts(&self, user: &User) -> StoreResult<Vec<TransactWriteItem>> {
        let mut puts = vec![put_if_absent(&self.tables.users, user_item(user))?];
        puts.push(put_if_absent(
            &self.tables.users,
            claim_item(username_claim(&user.username), user.id),
        )?);
        puts.push(put_if_absent(
            &self.tables.users,
            claim_item(skeleton_claim(&user.username), user.id),
        )?);
        if !user.email.is_empty() {
            puts.push(put_if_absent(
                &self.tables.users,
                claim_item(email_claim(&user.email), user.id),
            )?);
        }
        Ok(puts)
    }

    /// Why writing `user` and its claims was refused. `None` when only the `USER#` item was
    /// in the way (a `create_user` that should take the next id).
    async fn claim_failure(
        &self,
        user: &User,
        codes: &[String],
    ) -> StoreResult<Option<StoreError>> {
        let failed = |i: usize| codes.get(i).is_some_and(|c| c == CONDITION_FAILED);
        if !codes.is_empty() {
            if failed(1) || failed(2) {
                return Ok(Some(StoreError::UsernameTaken));
            }
            if !user.email.is_empty() && failed(3) {
                return Ok(Some(StoreError::EmailTaken));
            }
            if failed(0) {
                return Ok(None);
            }
            return Ok(Some(cancelled(codes)));
        }
        // No reasons given: look at what is there.
        if self
            .claim_owner(username_claim(&user.username))
            .await?
            .is_some()
            || self
                .claim_owner(skeleton_claim(&user.username))
                .await?
                .is_some_and(|owner| owner != user.id)
        {
            return Ok(Some(StoreError::UsernameTaken));
        }
        if !user.email.is_empty() && self.claim_owner(email_claim(&user.email)).await?.is_some() {
            return Ok(Some(StoreError::EmailTaken));
        }
        if self
            .get(&self.tables.users, user_key(user.id))
            .await?
            .is_some()
        {
            return Ok(None);
        }
        Ok(Some(cancelled(codes)))
    }

    /// Moves the id counter to at least `id`.
    async fn bump_counter(&self, id: u64) -> StoreResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .set_key(Some(pk(COUNTER_KEY.to_string())))
            .update_expression("SET #value = :id")
            .condition_expression("attribute_not_exists(#value) OR #value < :id")
            .expression_attribute_names("#value", "value")
            .expression_attribute_values(":id", n(id))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(sdk_error(e)),
        }
    }

    fn blacklist_put(&self, entry: &BlacklistEntry, now: i64) -> StoreResult<Put> {
        built(
            Put::builder()
                .table_name(&self.tables.blacklist)
                .set_item(Some(blacklist_item(entry)))
                .condition_expression("attribute_not_exists(#jti) OR #expires_at <= :now")
                .expression_attribute_names("#jti", "jti")
                .expression_attribute_names("#expires_at", "expires_at")
                .expression_attribute_values(":now", n(now))
                .build(),
        )
    }

    fn session_put(&self, session: &Session) -> StoreResult<TransactWriteItem> {
        Ok(TransactWriteItem::builder()
            .put(built(
                Put::builder()
                    .table_name(&self.tables.sessions)
                    .set_item(Some(session_item(session)))
                    .build(),
            )?)
            .build())
    }
}

#[async_trait]
impl UserStore for DynamoStore {
    async fn create_user(&self, new: NewUser, first_session: Session) -> StoreResult<User> {
        // A taken `USER#<id>` (an import that raced the counter) means: take the next id.
        for _ in 0..3 {
            let id = self.next_id().await?;
            let user = User {
                id,
                username: new.username.clone(),
                email: new.email.clone(),
                password_hash: new.password_hash.clone(),
                first_name: String::new(),
                last_name: String::new(),
                nickname: String::new(),
                signature: String::new(),
                avatar: None,
                is_active: true,
                date_joined: new.date_joined,
                last_login: None,
                password_version: 0,
            };
            let session = Session {
                user_id: id,
                ..first_session.clone()
            };
            let mut items = self.user_puts(&user)?;
            items.push(self.session_put(&session)?);
            match self.transact(items).await? {
                Ok(()) => return Ok(user),
                Err(codes) => match self.claim_failure(&user, &codes).await? {
                    Some(err) => return Err(err),
                    None => continue,
                },
            }
        }
        Err(StoreError::Backend(
            "could not allocate a free user id".into(),
        ))
    }

    async fn insert_user(&self, user: User) -> StoreResult<()> {
        match self.transact(self.user_puts(&user)?).await? {
            Ok(()) => {}
            Err(codes) => {
                return Err(self
                    .claim_failure(&user, &codes)
                    .await?
                    .unwrap_or(StoreError::UsernameTaken))
            }
        }
        self.bump_counter(user.id).await
    }

    async fn get_user(&self, id: u64) -> StoreResult<Option<User>> {
        self.get(&self.tables.users, user_key(id))
            .await?
            .map(|item| user_from_item(&item))
            .transpose()
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        if username.is_empty() {
            return Ok(None);
        }
        match self.claim_owner(username_claim(username)).await? {
            Some(id) => self.get_user(id).await,
            None => Ok(None),
        }
    }

    async fn email_in_use(&self, email: &str) -> StoreResult<bool> {
        if email.is_empty() {
            return Ok(false);
        }
        Ok(self.claim_owner(email_claim(email)).await?.is_some())
    }

    async fn find_active_users_by_email(&self, email: &str) -> StoreResult<Vec<User>> {
        let email = email.trim();
        if email.is_empty() {
            return Ok(Vec::new());
        }
        // The EMAIL# claim names the one user with this address; its user item says whether the
        // address is still theirs (a claim is written with the user, in one transaction).
        let Some(id) = self.claim_owner(email_claim(email)).await? else { return Ok(Vec::new()) };
        Ok(self
            .get_user(id)
            .await?
            .filter(|u| u.is_active && u.email.to_lowercase() == email.to_lowercase())
            .into_iter()
            .collect())
    }

    async fn update_user(&self, id: u64, update: UserUpdate) -> StoreResult<User> {
        // A username change is checked against the username read first; when another change
        // slipped in between, the transaction fails and is tried again on fresh data.
        for _ in 0..5 {
            let current = self.get_user(id).await?.ok_or(StoreError::UserNotFound)?;
            let old_key = username_key(&current.username);
            let new_key = update.username.as_deref().map(username_key);
            let key_changes = new_key.as_ref().is_some_and(|k| *k != old_key);

            let mut expr = Expr::default();
            let mut sets = Vec::new();
            let mut removes = Vec::new();
            if let Some(username) = &update.username {
                sets.push(expr.set("username", s(username)));
                sets.push(expr.set("username_key", s(&username_key(username))));
            }
            for (attr, value) in [
                ("first_name", &update.first_name),
                ("last_name", &update.last_name),
                ("nickname", &update.nickname),
                ("signature", &update.signature),
            ] {
                if let Some(value) = value {
                    sets.push(expr.set(attr, s(value)));
                }
            }
            match &update.avatar {
                Some(Some(avatar)) => sets.push(expr.set("avatar", s(avatar))),
                Some(None) => removes.push(expr.name("avatar")),
                None => {}
            }
            if sets.is_empty() && removes.is_empty() {
                return Ok(current);
            }
            let mut update_expression = String::new();
            if !sets.is_empty() {
                update_expression += &format!("SET {}", sets.join(", "));
            }
            if !removes.is_empty() {
                update_expression += &format!(" REMOVE {}", removes.join(", "));
            }
            let pk_name = expr.name(PK);

            if !key_changes {
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.tables.users)
                    .set_key(Some(user_key(id)))
                    .update_expression(update_expression.trim())
                    .condition_expression(format!("attribute_exists({pk_name})"))
                    .set_expression_attribute_names(Some(expr.names))
                    .set_expression_attribute_values(non_empty(expr.values))
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await;
                return match result {
                    Ok(out) => user_from_item(&out.attributes.unwrap_or_default()),
                    Err(e) if is_condition_failure(&e) => Err(StoreError::UserNotFound),
                    Err(e) => Err(sdk_error(e)),
                };
            }

            let new_username = update.username.as_deref().unwrap_or_default();
            let condition = format!(
                "attribute_exists({pk_name}) AND {} = {}",
                expr.name("username_key"),
                expr.value("old_key", s(&old_key))
            );
            let claim_condition = "attribute_not_exists(#pk) OR #user_id = :id";
            let claim_names = HashMap::from([
                ("#pk".to_string(), PK.to_string()),
                ("#user_id".to_string(), "user_id".to_string()),
            ]);
            // Claims move from the old name to the new one: put the new claim unless another user
            // holds it, delete the old one unless another user holds it (or it is missing).
            let move_claim = |new: String, old: String| -> StoreResult<[TransactWriteItem; 2]> {
                Ok([
                    TransactWriteItem::builder()
                        .put(built(
                            Put::builder()
                                .table_name(&self.tables.users)
                                .set_item(Some(claim_item(new, id)))
                                .condition_expression(claim_condition)
                                .set_expression_attribute_names(Some(claim_names.clone()))
                                .expression_attribute_values(":id", n(id))
                                .build(),
                        )?)
                        .build(),
                    TransactWriteItem::builder()
                        .delete(built(
                            Delete::builder()
                                .table_name(&self.tables.users)
                                .set_key(Some(pk(old)))
                                .condition_expression(claim_condition)
                                .set_expression_attribute_names(Some(claim_names.clone()))
                                .expression_attribute_values(":id", n(id))
                                .build(),
                        )?)
                        .build(),
                ])
            };
            let [put_name, delete_name] =
                move_claim(username_claim(new_username), format!("USERNAME#{old_key}"))?;
            let mut items = vec![
                put_name,
                delete_name,
                TransactWriteItem::builder()
                    .update(built(
                        Update::builder()
                            .table_name(&self.tables.users)
                            .set_key(Some(user_key(id)))
                            .update_expression(update_expression.trim())
                            .condition_expression(condition)
                            .set_expression_attribute_names(Some(expr.names))
                            .set_expression_attribute_values(non_empty(expr.values))
                            .build(),
                    )?)
                    .build(),
            ];
            // The skeleton claim moves too, unless the new name looks like the old one (one
            // transaction may not touch an item twice).
            let (new_skeleton, old_skeleton) =
                (skeleton_claim(new_username), skeleton_claim(&current.username));
            if new_skeleton != old_skeleton {
                items.extend(move_claim(new_skeleton.clone(), old_skeleton)?);
            }
            match self.transact(items).await? {
                Ok(()) => return self.get_user(id).await?.ok_or(StoreError::UserNotFound),
                Err(codes) if codes.is_empty() => {
                    let owner = self.claim_owner(username_claim(new_username)).await?;
                    let look_alike = self.claim_owner(new_skeleton).await?;
                    if owner.or(look_alike).is_some_and(|owner| owner != id) {
                        return Err(StoreError::UsernameTaken);
                    }
                    // Otherwise the user changed or went: look again.
                }
                Err(codes) => {
                    let failed = |i: usize| codes.get(i).is_some_and(|c| c == CONDITION_FAILED);
                    if failed(0) || failed(3) {
                        return Err(StoreError::UsernameTaken);
                    }
                    if failed(1) {
                        return Err(StoreError::Backend(format!(
                            "username claim {old_key:?} belongs to another user than {id}"
                        )));
                    }
                    if !failed(2) {
                        return Err(cancelled(&codes));
                    }
                    // The user changed or went: look again.
                }
            }
        }
        Err(StoreError::Unavailable(
            "the user kept changing during a username change".into(),
        ))
    }

    async fn replace_password_hash(&self, r: PasswordReplacement) -> StoreResult<u64> {
        // The version read with the hash: the write names it, so a version is never skipped
        // or given twice (the hash condition alone would already refuse a concurrent change).
        let current = self.get_user(r.user_id).await?.ok_or(StoreError::UserNotFound)?;
        if current.password_hash != r.expected_hash {
            return Err(StoreError::Stale);
        }
        let version = current.password_version + u64::from(r.new_version);
        let mut items = vec![TransactWriteItem::builder()
            .update(built(
                Update::builder()
                    .table_name(&self.tables.users)
                    .set_key(Some(user_key(r.user_id)))
                    .update_expression("SET #password = :new, #pwv = :version")
                    .condition_expression(format!(
                        "attribute_exists(#pk) AND #password = :expected AND {}",
                        password_version_is(current.password_version)
                    ))
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#password", "password")
                    .expression_attribute_names("#pwv", PASSWORD_VERSION)
                    .expression_attribute_values(":new", s(&r.new_hash))
                    .expression_attribute_values(":expected", s(&r.expected_hash))
                    .expression_attribute_values(":pwv", n(current.password_version))
                    .expression_attribute_values(":version", n(version))
                    .build(),
            )?)
            .build()];
        if let (true, Some(keep)) = (r.new_version, &r.keep_session) {
            items.push(
                TransactWriteItem::builder()
                    .update(built(
                        Update::builder()
                            .table_name(&self.tables.sessions)
                            .set_key(Some(session_key(keep)))
                            .update_expression("SET #pwv = :version")
                            .condition_expression("#user_id = :uid")
                            .expression_attribute_names("#pwv", PASSWORD_VERSION)
                            .expression_attribute_names("#user_id", "user_id")
                            .expression_attribute_values(":version", n(version))
                            .expression_attribute_values(":uid", n(r.user_id))
                            .build(),
                    )?)
                    .build(),
            );
        }
        match self.transact(items).await? {
            Ok(()) => Ok(version),
            Err(codes) if codes.first().is_some_and(|c| c == CONDITION_FAILED) || codes.is_empty() => {
                match self.get_user(r.user_id).await? {
                    None => Err(StoreError::UserNotFound),
                    Some(_) => Err(StoreError::Stale),
                }
            }
            // The kept session is gone: the password is not changed without it.
            Err(codes) if codes.get(1).is_some_and(|c| c == CONDITION_FAILED) => Err(StoreError::Stale),
            Err(codes) => Err(cancelled(&codes)),
        }
    }
}

#[async_trait]
impl SessionStore for DynamoStore {
    async fn start_session(&self, session: Session, login_at: i64) -> StoreResult<()> {
        let items = vec![
            self.session_put(&session)?,
            TransactWriteItem::builder()
                .update(built(
                    Update::builder()
                        .table_name(&self.tables.users)
                        .set_key(Some(user_key(session.user_id)))
                        .update_expression("SET #last_login = :login_at")
                        .condition_expression(format!(
                            "attribute_exists(#pk) AND {}",
                            password_version_is(session.password_version)
                        ))
                        .expression_attribute_names("#last_login", "last_login")
                        .expression_attribute_names("#pk", PK)
                        .expression_attribute_names("#pwv", PASSWORD_VERSION)
                        .expression_attribute_values(":login_at", n(login_at))
                        .expression_attribute_values(":pwv", n(session.password_version))
                        .build(),
                )?)
                .build(),
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(codes) if codes.is_empty() || codes.get(1).is_some_and(|c| c == CONDITION_FAILED) => {
                match self.get_user(session.user_id).await? {
                    None => Err(StoreError::UserNotFound),
                    Some(user) if user.password_version != session.password_version => Err(StoreError::Stale),
                    Some(_) => Err(cancelled(&codes)),
                }
            }
            Err(codes) => Err(cancelled(&codes)),
        }
    }

    async fn session_with_user(
        &self,
        user_id: u64,
        session_id: &str,
        now: i64,
    ) -> StoreResult<(Option<User>, Option<Session>)> {
        let mut request = HashMap::from([(
            self.tables.users.clone(),
            built(
                KeysAndAttributes::builder()
                    .keys(user_key(user_id))
                    .consistent_read(true)
                    .build(),
            )?,
        )]);
        if !session_id.is_empty() {
            request.insert(
                self.tables.sessions.clone(),
                built(
                    KeysAndAttributes::builder()
                        .keys(session_key(session_id))
                        .consistent_read(true)
                        .build(),
                )?,
            );
        }
        let (mut user, mut session) = (None, None);
        for (table, items) in self.batch_get(request).await? {
            for item in items {
                if table == self.tables.users {
                    user = Some(user_from_item(&item)?);
                } else if table == self.tables.sessions {
                    session = Some(session_from_item(&item)?);
                }
            }
        }
        let session = session.filter(|s| s.user_id == user_id && s.is_live(now));
        Ok((user, session))
    }

    async fn rotate_refresh(&self, r: Rotation) -> StoreResult<RotateOutcome> {
        let entry = BlacklistEntry {
            jti: r.old_jti.clone(),
            user_id: r.user_id,
            session_id: r.session_id.clone(),
            expires_at: r.old_exp,
            blacklisted_at: r.now,
        };
        let items = vec![
            TransactWriteItem::builder()
                .put(self.blacklist_put(&entry, r.now)?)
                .build(),
            TransactWriteItem::builder()
                .update(built(
                    Update::builder()
                        .table_name(&self.tables.sessions)
                        .set_key(Some(session_key(&r.session_id)))
                        .update_expression("SET #refresh_jti = :new, #expires_at = :new_exp")
                        .condition_expression(format!(
                            "#refresh_jti = :old AND #expires_at > :now AND #user_id = :uid AND {}",
                            password_version_is(r.password_version)
                        ))
                        .expression_attribute_names("#refresh_jti", "refresh_jti")
                        .expression_attribute_names("#expires_at", "expires_at")
                        .expression_attribute_names("#user_id", "user_id")
                        .expression_attribute_names("#pwv", PASSWORD_VERSION)
                        .expression_attribute_values(":pwv", n(r.password_version))
                        .expression_attribute_values(":new", s(&r.new_jti))
                        .expression_attribute_values(":new_exp", n(r.new_exp))
                        .expression_attribute_values(":old", s(&r.old_jti))
                        .expression_attribute_values(":now", n(r.now))
                        .expression_attribute_values(":uid", n(r.user_id))
                        .build(),
                )?)
                .build(),
            TransactWriteItem::builder()
                .condition_check(built(
                    ConditionCheck::builder()
                        .table_name(&self.tables.users)
                        .set_key(Some(user_key(r.user_id)))
                        .condition_expression(format!(
                            "#is_active = :true AND {}",
                            password_version_is(r.password_version)
                        ))
                        .expression_attribute_names("#is_active", "is_active")
                        .expression_attribute_names("#pwv", PASSWORD_VERSION)
                        .expression_attribute_values(":true", AttributeValue::Bool(true))
                        .expression_attribute_values(":pwv", n(r.password_version))
                        .build(),
                )?)
                .build(),
        ];
        let codes = match self.transact(items).await? {
            Ok(()) => return Ok(RotateOutcome::Rotated),
            Err(codes) => codes,
        };
        // Refused: find out why, in the documented order.
        if self.blacklisted(&r.old_jti, r.now).await?.is_some() {
            return Ok(RotateOutcome::Blacklisted);
        }
        let user = match self.get_user(r.user_id).await? {
            None => return Ok(RotateOutcome::UserMissing),
            Some(user) if !user.is_active => return Ok(RotateOutcome::UserInactive),
            Some(user) => user,
        };
        if user.password_version != r.password_version {
            // The token's version is not the user's: the session may have followed the user
            // (the caller's own session in a password change) or be one of an older password.
            let session = self
                .get(&self.tables.sessions, session_key(&r.session_id))
                .await?
                .map(|item| session_from_item(&item))
                .transpose()?
                .filter(|s| s.refresh_jti == r.old_jti && s.user_id == r.user_id && s.is_live(r.now));
            return Ok(match session {
                Some(s) if s.password_version == user.password_version => {
                    RotateOutcome::PasswordVersion(s.password_version)
                }
                _ => RotateOutcome::SessionEnded,
            });
        }
        if !codes.is_empty() && !codes.iter().any(|c| c == CONDITION_FAILED) {
            // Cancelled by conflicts only, and nothing explains it: let the caller retry.
            return Err(cancelled(&codes));
        }
        Ok(RotateOutcome::SessionEnded)
    }

    async fn logout(&self, token: SpentToken, now: i64) -> StoreResult<LogoutOutcome> {
        if self.blacklisted(&token.jti, now).await?.is_some() {
            return Ok(LogoutOutcome::AlreadyBlacklisted);
        }
        let entry = BlacklistEntry {
            jti: token.jti.clone(),
            user_id: token.user_id,
            session_id: token.session_id.clone(),
            expires_at: token.exp,
            blacklisted_at: now,
        };
        let items = vec![
            TransactWriteItem::builder()
                .put(self.blacklist_put(&entry, now)?)
                .build(),
            TransactWriteItem::builder()
                .delete(built(
                    Delete::builder()
                        .table_name(&self.tables.sessions)
                        .set_key(Some(session_key(&token.session_id)))
                        .condition_expression("#refresh_jti = :jti")
                        .expression_attribute_names("#refresh_jti", "refresh_jti")
                        .expression_attribute_values(":jti", s(&token.jti))
                        .build(),
                )?)
                .build(),
        ];
        let codes = match self.transact(items).await? {
            Ok(()) => return Ok(LogoutOutcome::LoggedOut),
            Err(codes) => codes,
        };
        if codes.first().is_some_and(|c| c == CONDITION_FAILED) {
            return Ok(LogoutOutcome::AlreadyBlacklisted);
        }
        // The token is not its session's current one (or the session is gone): blacklist it alone.
        let put = self.blacklist_put(&entry, now)?;
        let result = self
            .client
            .put_item()
            .table_name(put.table_name)
            .set_item(Some(put.item))
            .set_condition_expression(put.condition_expression)
            .set_expression_attribute_names(put.expression_attribute_names)
            .set_expression_attribute_values(put.expression_attribute_values)
            .send()
            .await;
        match result {
            Ok(_) => Ok(LogoutOutcome::LoggedOut),
            Err(e) if is_condition_failure(&e) => Ok(LogoutOutcome::AlreadyBlacklisted),
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn end_session(&self, session_id: &str) -> StoreResult<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.tables.sessions)
            .set_key(Some(session_key(session_id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn end_sessions(&self, user_id: u64, keep: Option<&str>) -> StoreResult<u64> {
        let mut session_ids = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.sessions)
                .index_name(BY_USER_INDEX)
                .key_condition_expression("#user_id = :uid")
                .expression_attribute_names("#user_id", "user_id")
                .expression_attribute_values(":uid", n(user_id))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_error)?;
            for item in out.items() {
                session_ids.push(string(item, "session_id")?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        let mut ended = 0;
        for session_id in session_ids {
            if Some(session_id.as_str()) != keep && self.end_session(&session_id).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }
}

#[async_trait]
impl BlacklistStore for DynamoStore {
    async fn blacklisted(&self, jti: &str, now: i64) -> StoreResult<Option<BlacklistEntry>> {
        if jti.is_empty() {
            return Ok(None);
        }
        match self
            .get(
                &self.tables.blacklist,
                HashMap::from([("jti".into(), s(jti))]),
            )
            .await?
        {
            Some(item) => {
                let entry = blacklist_from_item(&item)?;
                Ok((entry.expires_at > now).then_some(entry))
            }
            None => Ok(None),
        }
    }

    async fn purge_expired(&self, _now: i64) -> StoreResult<u64> {
        // DynamoDB's TTL on `expires_at` removes them; reads already ignore the expired ones.
        Ok(0)
    }
}

// ----- expressions ---------------------------------------------------------------------------

/// Attribute names and values of an update expression (every attribute goes through a `#name`,
/// so reserved words never matter).
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: Item,
}

impl Expr {
    fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#{attr}");
        self.names.insert(placeholder.clone(), attr.to_string());
        placeholder
    }

    fn value(&mut self, key: &str, value: AttributeValue) -> String {
        let placeholder = format!(":{key}");
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// `#attr = :attr`.
    fn set(&mut self, attr: &str, value: AttributeValue) -> String {
        format!("{} = {}", self.name(attr), self.value(attr, value))
    }
}

fn non_empty(values: Item) -> Option<Item> {
    (!values.is_empty()).then_some(values)
}

fn put_if_absent(table: &str, item: Item) -> StoreResult<TransactWriteItem> {
    Ok(TransactWriteItem::builder()
        .put(built(
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .build(),
        )?)
        .build())
}

// ----- items ---------------------------------------------------------------------------------

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn pk(value: String) -> Item {
    HashMap::from([(PK.to_string(), AttributeValue::S(value))])
}

fn user_key(id: u64) -> Item {
    pk(format!("USER#{id}"))
}

fn username_claim(username: &str) -> String {
    format!("USERNAME#{}", username_key(username))
}

fn skeleton_claim(username: &str) -> String {
    format!("SKELETON#{}", username_skeleton(username))
}

fn email_claim(email: &str) -> String {
    format!("EMAIL#{}", email.to_lowercase())
}

fn session_key(session_id: &str) -> Item {
    HashMap::from([("session_id".to_string(), s(session_id))])
}

fn claim_item(claim: String, user_id: u64) -> Item {
    let mut item = pk(claim);
    item.insert("user_id".into(), n(user_id));
    item
}

fn user_item(user: &User) -> Item {
    let mut item = user_key(user.id);
    item.insert("id".into(), n(user.id));
    item.insert("username".into(), s(&user.username));
    item.insert("username_key".into(), s(&username_key(&user.username)));
    item.insert("email".into(), s(&user.email));
    item.insert("email_key".into(), s(&user.email.to_lowercase()));
    item.insert("password".into(), s(&user.password_hash));
    item.insert("first_name".into(), s(&user.first_name));
    item.insert("last_name".into(), s(&user.last_name));
    item.insert("nickname".into(), s(&user.nickname));
    item.insert("signature".into(), s(&user.signature));
    if let Some(avatar) = &user.avatar {
        item.insert("avatar".into(), s(avatar));
    }
    item.insert("is_active".into(), AttributeValue::Bool(user.is_active));
    item.insert("date_joined".into(), n(user.date_joined));
    if let Some(last_login) = user.last_login {
        item.insert("last_login".into(), n(last_login));
    }
    item.insert(PASSWORD_VERSION.into(), n(user.password_version));
    item
}

/// A number attribute that items written before it existed lack: 0 then.
fn number_or_zero(item: &Item, attr: &str) -> StoreResult<u64> {
    match item.get(attr) {
        None => Ok(0),
        Some(_) => number(item, attr),
    }
}

/// The condition "the item's password version is `version`" (`#pwv` names the attribute);
/// items written before versions existed are at 0.
fn password_version_is(version: u64) -> &'static str {
    if version == 0 {
        "(attribute_not_exists(#pwv) OR #pwv = :pwv)"
    } else {
        "#pwv = :pwv"
    }
}

fn user_from_item(item: &Item) -> StoreResult<User> {
    Ok(User {
        id: number(item, "id")?,
        username: string(item, "username")?,
        email: string(item, "email")?,
        password_hash: string(item, "password")?,
        first_name: string(item, "first_name")?,
        last_name: string(item, "last_name")?,
        nickname: string(item, "nickname")?,
        signature: string(item, "signature")?,
        avatar: optional_string(item, "avatar")?,
        is_active: match item.get("is_active") {
            Some(AttributeValue::Bool(b)) => *b,
            other => return Err(odd("is_active", other)),
        },
        date_joined: number(item, "date_joined")?,
        last_login: match item.get("last_login") {
            None | Some(AttributeValue::Null(_)) => None,
            Some(_) => Some(number(item, "last_login")?),
        },
        password_version: number_or_zero(item, PASSWORD_VERSION)?,
    })
}

fn session_item(session: &Session) -> Item {
    let mut item = session_key(&session.id);
    item.insert("user_id".into(), n(session.user_id));
    item.insert("refresh_jti".into(), s(&session.refresh_jti));
    item.insert("created_at".into(), n(session.created_at));
    item.insert("expires_at".into(), n(session.expires_at));
    item.insert(PASSWORD_VERSION.into(), n(session.password_version));
    item
}

fn session_from_item(item: &Item) -> StoreResult<Session> {
    Ok(Session {
        id: string(item, "session_id")?,
        user_id: number(item, "user_id")?,
        refresh_jti: string(item, "refresh_jti")?,
        created_at: number(item, "created_at")?,
        expires_at: number(item, "expires_at")?,
        password_version: number_or_zero(item, PASSWORD_VERSION)?,
    })
}

fn blacklist_item(entry: &BlacklistEntry) -> Item {
    HashMap::from([
        ("jti".to_string(), s(&entry.jti)),
        ("user_id".to_string(), n(entry.user_id)),
        ("session_id".to_string(), s(&entry.session_id)),
        ("expires_at".to_string(), n(entry.expires_at)),
        ("blacklisted_at".to_string(), n(entry.blacklisted_at)),
    ])
}

fn blacklist_from_item(item: &Item) -> StoreResult<BlacklistEntry> {
    Ok(BlacklistEntry {
        jti: string(item, "jti")?,
        user_id: number(item, "user_id")?,
        session_id: string(item, "session_id")?,
        expires_at: number(item, "expires_at")?,
        blacklisted_at: number(item, "blacklisted_at")?,
    })
}

fn odd(attr: &str, value: Option<&AttributeValue>) -> StoreError {
    match value {
        None => StoreError::Backend(format!("item has no attribute {attr:?}")),
        Some(value) => {
            StoreError::Backend(format!("attribute {attr:?} has an odd value: {value:?}"))
        }
    }
}

fn string(item: &Item, attr: &str) -> StoreResult<String> {
    match item.get(attr) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        other => Err(odd(attr, other)),
    }
}

fn optional_string(item: &Item, attr: &str) -> StoreResult<Option<String>> {
    match item.get(attr) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        other => Err(odd(attr, other)),
    }
}

fn number<T: std::str::FromStr>(item: &Item, attr: &str) -> StoreResult<T> {
    match item.get(attr) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| odd(attr, item.get(attr))),
        other => Err(odd(attr, other)),
    }
}

// ----- errors --------------------------------------------------------------------------------

fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> StoreResult<T> {
    result.map_err(|e| StoreError::Backend(format!("building a DynamoDB request: {e}")))
}

/// Cancellation reasons that mean "try again later".
const TRANSIENT_REASONS: &[&str] = &[
    TRANSACTION_CONFLICT,
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
];

fn cancelled(codes: &[String]) -> StoreError {
    let message = format!("transaction cancelled ({})", codes.join(", "));
    if codes
        .iter()
        .any(|c| TRANSIENT_REASONS.contains(&c.as_str()))
    {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    err.as_service_error().and_then(|e| e.code())
}

fn is_condition_failure<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    error_code(err) == Some("ConditionalCheckFailedException")
}

/// Error codes that mean "try again later" rather than "this request is wrong".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// `Unavailable` for what a retry may fix (timeouts, connection failures, throttling, 5xx),
/// `Backend` for the rest.
fn sdk_error<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ResponseError(e) => e.raw().status().is_server_error(),
        SdkError::ServiceError(e) => {
            e.raw().status().is_server_error()
                || e.err()
                    .code()
                    .is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    };
    let message = match &err {
        SdkError::ServiceError(e) => format!(
            "DynamoDB {}: {}",
            e.err().code().unwrap_or("error"),
            e.err().message().unwrap_or("(no message)")
        ),
        _ => format!("DynamoDB: {}", DisplayErrorContext(&err)),
    };
    if transient {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

impl DynamoStore {
    /// The counts of the given throttle rows (consistent reads), by key; missing rows count 0.
    async fn counter_values(&self, keys: &[String], now: i64) -> StoreResult<HashMap<String, u64>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let mut request = KeysAndAttributes::builder().consistent_read(true);
        let mut seen = std::collections::HashSet::new();
        for key in keys.iter().filter(|k| seen.insert(k.as_str())) {
            request = request.keys(HashMap::from([(THROTTLE_KEY.to_string(), s(key))]));
        }
        let found = self.batch_get(HashMap::from([(self.tables.throttle.clone(), built(request.build())?)])).await?;
        counts_of(found.get(&self.tables.throttle), now)
    }

    /// One more in the current window of `rule`, if its count is below `ceiling`.
    fn reserve_update(&self, rule: &Rule, ceiling: u64, now: i64) -> StoreResult<Update> {
        built(
            Update::builder()
                .table_name(&self.tables.throttle)
                .key(THROTTLE_KEY, s(&rule.keys(now).0))
                .update_expression("ADD #count :one SET #expires_at = :expires_at")
                .condition_expression("attribute_not_exists(#count) OR #count < :ceiling")
                .expression_attribute_names("#count", "count")
                .expression_attribute_names("#expires_at", TTL_ATTRIBUTE)
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":ceiling", n(ceiling))
                .expression_attribute_values(":expires_at", n(rule.expires_at(now)))
                .build(),
        )
    }
}

/// Live throttle rows' counts by key.
fn counts_of(items: Option<&Vec<Item>>, now: i64) -> StoreResult<HashMap<String, u64>> {
    let mut counts = HashMap::new();
    for item in items.into_iter().flatten() {
        if number::<i64>(item, TTL_ATTRIBUTE)? > now {
            counts.insert(string(item, THROTTLE_KEY)?, number::<i64>(item, "count")?.max(0) as u64);
        }
    }
    Ok(counts)
}

#[async_trait]
impl ThrottleStore for DynamoStore {
    async fn reserve(&self, rules: &[Rule], known: Option<&[Usage]>, now: i64) -> StoreResult<Admission> {
        if rules.is_empty() {
            return Ok(Admission::Admitted(Reservation::default()));
        }
        // The previous windows are closed, so reading them first is safe; the current windows
        // are counted by conditional updates that refuse at the ceiling those leave, all in one
        // transaction: of parallel attempts, no more than the limit get through.
        let usages: Vec<Usage> = match known {
            Some(usages) if usages.len() == rules.len() => usages.to_vec(),
            _ => {
                let keys: Vec<String> = rules.iter().flat_map(|r| { let (c, p) = r.keys(now); [c, p] }).collect();
                let counts = self.counter_values(&keys, now).await?;
                rules
                    .iter()
                    .map(|r| {
                        let (current, previous) = r.keys(now);
                        Usage {
                            previous: counts.get(&previous).copied().unwrap_or(0),
                            current: counts.get(&current).copied().unwrap_or(0),
                        }
                    })
                    .collect()
            }
        };
        if let Some(retry_after) = throttle::refusal(rules, &usages, now) {
            return Ok(Admission::Refused { retry_after });
        }
        let ceilings: Vec<u64> = rules.iter().zip(&usages).map(|(r, u)| r.limit.current_ceiling(u.previous, now)).collect();
        let refused = |failed: &dyn Fn(usize) -> bool| {
            // A refused condition means the count reached its ceiling meanwhile.
            let at_ceiling: Vec<Usage> = usages
                .iter()
                .zip(&ceilings)
                .enumerate()
                .map(|(i, (u, c))| if failed(i) { Usage { previous: u.previous, current: *c } } else { *u })
                .collect();
            Admission::Refused { retry_after: throttle::refusal(rules, &at_ceiling, now).unwrap_or(1) }
        };
        let keys: Vec<String> = rules.iter().map(|r| r.keys(now).0).collect();
        if let [rule] = rules {
            let update = self.reserve_update(rule, ceilings[0], now)?;
            let result = self
                .client
                .update_item()
                .set_table_name(Some(update.table_name))
                .set_key(Some(update.key))
                .set_update_expression(Some(update.update_expression))
                .set_condition_expression(update.condition_expression)
                .set_expression_attribute_names(update.expression_attribute_names)
                .set_expression_attribute_values(update.expression_attribute_values)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(Admission::Admitted(Reservation { keys })),
                Err(e) if is_condition_failure(&e) => Ok(refused(&|_| true)),
                Err(e) => Err(sdk_error(e)),
            };
        }
        let items = rules
            .iter()
            .zip(&ceilings)
            .map(|(rule, ceiling)| Ok(TransactWriteItem::builder().update(self.reserve_update(rule, *ceiling, now)?).build()))
            .collect::<StoreResult<Vec<_>>>()?;
        match self.transact(items).await? {
            Ok(()) => Ok(Admission::Admitted(Reservation { keys })),
            Err(codes) if codes.iter().any(|c| c == CONDITION_FAILED) => {
                Ok(refused(&|i| codes.get(i).is_some_and(|c| c == CONDITION_FAILED)))
            }
            // No reasons given: assume every counter is full (refusing is the safe side).
            Err(codes) if codes.is_empty() => Ok(refused(&|_| true)),
            Err(codes) => Err(cancelled(&codes)),
        }
    }

    async fn release(&self, reservation: &Reservation) -> StoreResult<()> {
        let give_back = |key: &String| {
            built(
                Update::builder()
                    .table_name(&self.tables.throttle)
                    .key(THROTTLE_KEY, s(key))
                    .update_expression("ADD #count :minus_one")
                    // Never below zero, and never a new row without its TTL.
                    .condition_expression("#count > :zero")
                    .expression_attribute_names("#count", "count")
                    .expression_attribute_values(":minus_one", n(-1))
                    .expression_attribute_values(":zero", n(0))
                    .build(),
            )
        };
        // Both places in one call; if one counter had nothing left to give back, one at a time.
        if reservation.keys.len() > 1 {
            let items = reservation
                .keys
                .iter()
                .map(|key| Ok(TransactWriteItem::builder().update(give_back(key)?).build()))
                .collect::<StoreResult<Vec<_>>>()?;
            match self.transact(items).await? {
                Ok(()) => return Ok(()),
                Err(codes) if codes.is_empty() || codes.iter().any(|c| c == CONDITION_FAILED) => {}
                Err(codes) => return Err(cancelled(&codes)),
            }
        }
        for key in &reservation.keys {
            let update = give_back(key)?;
            let result = self
                .client
                .update_item()
                .set_table_name(Some(update.table_name))
                .set_key(Some(update.key))
                .set_update_expression(Some(update.update_expression))
                .set_condition_expression(update.condition_expression)
                .set_expression_attribute_names(update.expression_attribute_names)
                .set_expression_attribute_values(update.expression_attribute_values)
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(e) if is_condition_failure(&e) => {}
                Err(e) => return Err(sdk_error(e)),
            }
        }
        Ok(())
    }

    async fn login_lookup(
        &self,
        username: &str,
        rules: &[Rule],
        now: i64,
    ) -> StoreResult<(Option<User>, Vec<Usage>)> {
        let claim = username_claim(username);
        let mut request = HashMap::from([(
            self.tables.users.clone(),
            built(KeysAndAttributes::builder().keys(pk(claim.clone())).consistent_read(true).build())?,
        )]);
        let keys: Vec<(String, String)> = rules.iter().map(|r| r.keys(now)).collect();
        if !rules.is_empty() {
            let mut request_keys = KeysAndAttributes::builder().consistent_read(true);
            let mut seen = std::collections::HashSet::new();
            for key in keys.iter().flat_map(|(c, p)| [c, p]).filter(|k| seen.insert(k.as_str())) {
                request_keys = request_keys.keys(HashMap::from([(THROTTLE_KEY.to_string(), s(key))]));
            }
            request.insert(self.tables.throttle.clone(), built(request_keys.build())?);
        }
        let found = self.batch_get(request).await?;
        let counts = counts_of(found.get(&self.tables.throttle), now)?;
        let usages = keys
            .iter()
            .map(|(current, previous)| Usage {
                previous: counts.get(previous).copied().unwrap_or(0),
                current: counts.get(current).copied().unwrap_or(0),
            })
            .collect();
        let owner = match found.get(&self.tables.users).and_then(|items| items.first()) {
            Some(item) => Some(number::<u64>(item, "user_id")?),
            None => None,
        };
        let user = match owner {
            Some(id) => self.get_user(id).await?,
            None => None,
        };
        Ok((user, usages))
    }
}
