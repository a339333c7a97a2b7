//! `UserStore`: the `USER#` items and their `USERNAME#`, `SKELETON#` and `EMAIL#` claims, the id counter.

use super::*;

impl DynamoStore {
    async fn claim_owner(&self, claim: String) -> StoreResult<Option<u64>> {
        match self.get(&self.tables.users, pk(claim)).await? {
            Some(item) => Ok(Some(number(&item, "user_id")?)),
            None => Ok(None),
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
        puts.push(put_if_absent(&self.tables.users, claim_item(username_claim(&user.username), user.id))?);
        puts.push(put_if_absent(&self.tables.users, claim_item(skeleton_claim(&user.username), user.id))?);
        if !user.email.is_empty() {
            puts.push(put_if_absent(&self.tables.users, claim_item(email_claim(&user.email), user.id))?);
        }
        Ok(puts)
    }

    /// Why writing `user` and its claims was refused. `None` when only the `USER#` item was
    /// in the way (a `create_user` that should take the next id).
    async fn claim_failure(&self, user: &User, codes: &[String]) -> StoreResult<Option<StoreError>> {
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
        if self.claim_owner(username_claim(&user.username)).await?.is_some()
            || self.claim_owner(skeleton_claim(&user.username)).await?.is_some_and(|owner| owner != user.id)
        {
            return Ok(Some(StoreError::UsernameTaken));
        }
        if !user.email.is_empty() && self.claim_owner(email_claim(&user.email)).await?.is_some() {
            return Ok(Some(StoreError::EmailTaken));
        }
        if self.get(&self.tables.users, user_key(user.id)).await?.is_some() {
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
            let session = Session { user_id: id, ..first_session.clone() };
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
        Err(StoreError::Backend("could not allocate a free user id".into()))
    }

    async fn insert_user(&self, user: User) -> StoreResult<()> {
        match self.transact(self.user_puts(&user)?).await? {
            Ok(()) => {}
            Err(codes) => return Err(self.claim_failure(&user, &codes).await?.unwrap_or(StoreError::UsernameTaken)),
        }
        self.bump_counter(user.id).await
    }

    async fn get_user(&self, id: u64) -> StoreResult<Option<User>> {
        self.get(&self.tables.users, user_key(id)).await?.map(|item| user_from_item(&item)).transpose()
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
            let claim_names =
                HashMap::from([("#pk".to_string(), PK.to_string()), ("#user_id".to_string(), "user_id".to_string())]);
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
            let [put_name, delete_name] = move_claim(username_claim(new_username), format!("USERNAME#{old_key}"))?;
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
            let (new_skeleton, old_skeleton) = (skeleton_claim(new_username), skeleton_claim(&current.username));
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
        Err(StoreError::Unavailable("the user kept changing during a username change".into()))
    }

    async fn set_active(&self, id: u64, active: bool) -> StoreResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.users)
            .set_key(Some(user_key(id)))
            .update_expression("SET #is_active = :active")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#is_active", "is_active")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":active", AttributeValue::Bool(active))
            .send()
            .await;
        match condition_held(result)? {
            true => Ok(()),
            false => Err(StoreError::UserNotFound),
        }
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
