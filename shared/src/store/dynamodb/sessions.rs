//! `SessionStore` and `BlacklistStore`: sessions, rotations, logout and the refresh-token blacklist.

use super::*;

impl DynamoStore {
    pub(super) fn blacklist_put(&self, entry: &BlacklistEntry, now: i64) -> StoreResult<Put> {
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

    pub(super) fn session_put(&self, session: &Session) -> StoreResult<TransactWriteItem> {
        Ok(TransactWriteItem::builder()
            .put(built(Put::builder().table_name(&self.tables.sessions).set_item(Some(session_item(session))).build())?)
            .build())
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
        let other = (!session_id.is_empty()).then(|| (&self.tables.sessions, session_key(session_id)));
        let (user, session) = self.user_and_item(user_id, other).await?;
        let session = session.as_ref().map(session_from_item).transpose()?;
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
            TransactWriteItem::builder().put(self.blacklist_put(&entry, r.now)?).build(),
            TransactWriteItem::builder()
                .update(built(
                    Update::builder()
                        .table_name(&self.tables.sessions)
                        .set_key(Some(session_key(&r.session_id)))
                        .update_expression(
                            "SET #refresh_jti = :new, #expires_at = :new_exp, #previous_jti = :old, #last_used_at = :now",
                        )
                        .condition_expression(format!(
                            "#refresh_jti = :old AND #expires_at > :now AND #user_id = :uid AND {}",
                            password_version_is(r.password_version)
                        ))
                        .expression_attribute_names("#refresh_jti", "refresh_jti")
                        .expression_attribute_names("#expires_at", "expires_at")
                        .expression_attribute_names("#user_id", "user_id")
                        .expression_attribute_names("#previous_jti", "previous_jti")
                        .expression_attribute_names("#last_used_at", "last_used_at")
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
            TransactWriteItem::builder().put(self.blacklist_put(&entry, now)?).build(),
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
        Ok(if self.blacklist(entry, now).await? { LogoutOutcome::LoggedOut } else { LogoutOutcome::AlreadyBlacklisted })
    }

    async fn start_session_spending(
        &self,
        session: Session,
        spent: BlacklistEntry,
        now: i64,
    ) -> StoreResult<RotateOutcome> {
        let (user_id, version) = (session.user_id, session.password_version);
        let new_session = built(
            Put::builder()
                .table_name(&self.tables.sessions)
                .set_item(Some(session_item(&session)))
                .condition_expression("attribute_not_exists(#session_id)")
                .expression_attribute_names("#session_id", "session_id")
                .build(),
        )?;
        let items = vec![
            TransactWriteItem::builder().put(self.blacklist_put(&spent, now)?).build(),
            TransactWriteItem::builder().put(new_session).build(),
            TransactWriteItem::builder()
                .condition_check(built(
                    ConditionCheck::builder()
                        .table_name(&self.tables.users)
                        .set_key(Some(user_key(user_id)))
                        .condition_expression(format!("#is_active = :true AND {}", password_version_is(version)))
                        .expression_attribute_names("#is_active", "is_active")
                        .expression_attribute_names("#pwv", PASSWORD_VERSION)
                        .expression_attribute_values(":true", AttributeValue::Bool(true))
                        .expression_attribute_values(":pwv", n(version))
                        .build(),
                )?)
                .build(),
        ];
        let codes = match self.transact(items).await? {
            Ok(()) => return Ok(RotateOutcome::Rotated),
            Err(codes) => codes,
        };
        // Refused: find out why, in the documented order (the transaction wrote nothing).
        if self.blacklisted(&spent.jti, now).await?.is_some() {
            return Ok(RotateOutcome::Blacklisted);
        }
        match self.get_user(user_id).await? {
            None => return Ok(RotateOutcome::UserMissing),
            Some(user) if !user.is_active => return Ok(RotateOutcome::UserInactive),
            Some(user) if user.password_version != version => {
                return Ok(RotateOutcome::PasswordVersion(user.password_version))
            }
            Some(_) => {}
        }
        if codes.get(1).is_some_and(|c| c == CONDITION_FAILED) {
            return Ok(RotateOutcome::SessionEnded);
        }
        Err(cancelled(&codes))
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
        let session_ids = self.user_session_ids(user_id).await?;
        let mut ended = 0;
        for session_id in session_ids {
            if Some(session_id.as_str()) != keep && self.end_session(&session_id).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    async fn user_sessions(&self, user_id: u64, now: i64) -> StoreResult<Vec<Session>> {
        // The index (keys only) names them; the table has them, read consistently: a Query
        // and one BatchGetItem per 100 sessions.
        let session_ids = self.user_session_ids(user_id).await?;
        let mut sessions = Vec::with_capacity(session_ids.len());
        for chunk in session_ids.chunks(100) {
            let keys = chunk.iter().map(|id| session_key(id)).collect::<Vec<_>>();
            let request = HashMap::from([(
                self.tables.sessions.clone(),
                built(KeysAndAttributes::builder().set_keys(Some(keys)).consistent_read(true).build())?,
            )]);
            for items in self.batch_get(request).await?.into_values() {
                for item in items {
                    sessions.push(session_from_item(&item)?);
                }
            }
        }
        sessions.retain(|s| s.user_id == user_id && s.is_live(now));
        Ok(sessions)
    }

    async fn end_user_session(&self, user_id: u64, session_id: &str, now: i64) -> StoreResult<bool> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.sessions)
            .set_key(Some(session_key(session_id)))
            .condition_expression("#user_id = :uid AND #expires_at > :now")
            .expression_attribute_names("#user_id", "user_id")
            .expression_attribute_names("#expires_at", "expires_at")
            .expression_attribute_values(":uid", n(user_id))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        condition_held(result)
    }
}

impl DynamoStore {
    /// The ids of the user's sessions, from the `by_user` index (eventually consistent).
    async fn user_session_ids(&self, user_id: u64) -> StoreResult<Vec<String>> {
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
        Ok(session_ids)
    }
}

#[async_trait]
impl BlacklistStore for DynamoStore {
    async fn blacklisted(&self, jti: &str, now: i64) -> StoreResult<Option<BlacklistEntry>> {
        if jti.is_empty() {
            return Ok(None);
        }
        match self.get(&self.tables.blacklist, HashMap::from([("jti".into(), s(jti))])).await? {
            Some(item) => {
                let entry = blacklist_from_item(&item)?;
                Ok((entry.expires_at > now).then_some(entry))
            }
            None => Ok(None),
        }
    }

    async fn blacklist(&self, entry: BlacklistEntry, now: i64) -> StoreResult<bool> {
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
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn user_and_blacklist_entry(
        &self,
        user_id: u64,
        jti: &str,
        now: i64,
    ) -> StoreResult<(Option<User>, Option<BlacklistEntry>)> {
        let other = (!jti.is_empty()).then(|| (&self.tables.blacklist, HashMap::from([("jti".to_string(), s(jti))])));
        let (user, entry) = self.user_and_item(user_id, other).await?;
        let entry = entry.as_ref().map(blacklist_from_item).transpose()?;
        Ok((user, entry.filter(|e: &BlacklistEntry| e.expires_at > now)))
    }

    async fn purge_expired(&self, _now: i64) -> StoreResult<u64> {
        // DynamoDB's TTL on `expires_at` removes them; reads already ignore the expired ones.
        Ok(0)
    }
}
