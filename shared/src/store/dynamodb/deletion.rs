//! `AccountStore`: deleting a user's items.
//!
//! Why the sessions are not in the transaction: `TransactWriteItems` takes at most 100 items, a
//! user may have more sessions than that, and they can only be found through the `by_user`
//! index, which is eventually consistent (a session started a moment ago may be missing from
//! it). So the one transaction deletes what must agree with each other: `USER#<id>` and its
//! `USERNAME#`, `SKELETON#` and `EMAIL#` claims (at most four items), so the name and address are
//! free exactly when the user is gone. That write is what ends every session, however many and
//! wherever they are: every use of a session reads `USER#` in the same round trip
//! (`session_with_user`; `rotate_refresh` checks it in its transaction; `start_session` requires
//! it), ids are never handed out again, and so a session item left behind can never be used.
//! Deleting the session items afterwards (`end_sessions`) is housekeeping, and a failure there is
//! no half-deleted account: TTL removes what is left by `expires_at`. Blacklist entries (jti,
//! ids, times; no index by user) are left to their TTL as well.

use super::*;

/// One item of the deletion transaction, to read its cancellation reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    User,
    Username,
    Skeleton,
    Email,
}

impl DynamoStore {
    /// Deletes a claim item if it is `user_id`'s (or missing), never another user's.
    fn claim_delete(&self, claim: String, user_id: u64) -> StoreResult<TransactWriteItem> {
        Ok(TransactWriteItem::builder()
            .delete(built(
                Delete::builder()
                    .table_name(&self.tables.users)
                    .set_key(Some(pk(claim)))
                    .condition_expression("attribute_not_exists(#pk) OR #user_id = :id")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#user_id", "user_id")
                    .expression_attribute_values(":id", n(user_id))
                    .build(),
            )?)
            .build())
    }

    /// The transaction's items: the user (only as read), then its claims.
    fn deletion_items(&self, user: &User, with_skeleton: bool) -> StoreResult<Vec<(Part, TransactWriteItem)>> {
        let delete_user = TransactWriteItem::builder()
            .delete(built(
                Delete::builder()
                    .table_name(&self.tables.users)
                    .set_key(Some(user_key(user.id)))
                    .condition_expression(
                        "attribute_exists(#pk) AND #username = :username AND #email = :email AND #password = :password",
                    )
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#username", "username")
                    .expression_attribute_names("#email", "email")
                    .expression_attribute_names("#password", "password")
                    .expression_attribute_values(":username", s(&user.username))
                    .expression_attribute_values(":email", s(&user.email))
                    .expression_attribute_values(":password", s(&user.password_hash))
                    .build(),
            )?)
            .build();
        let mut items = vec![
            (Part::User, delete_user),
            (Part::Username, self.claim_delete(username_claim(&user.username), user.id)?),
        ];
        // Two names with one skeleton are one item: never touch an item twice in a transaction.
        if with_skeleton {
            items.push((Part::Skeleton, self.claim_delete(skeleton_claim(&user.username), user.id)?));
        }
        if !user.email.is_empty() {
            items.push((Part::Email, self.claim_delete(email_claim(&user.email), user.id)?));
        }
        Ok(items)
    }
}

#[async_trait]
impl crate::store::AccountStore for DynamoStore {
    async fn delete_user(&self, user: &User) -> StoreResult<()> {
        // A look-alike name of the time before skeleton claims may have its skeleton claimed by
        // another user: then this user has none of its own to delete.
        let mut with_skeleton = true;
        for _ in 0..2 {
            let (parts, items): (Vec<Part>, Vec<TransactWriteItem>) =
                self.deletion_items(user, with_skeleton)?.into_iter().unzip();
            let codes = match self.transact(items).await? {
                Ok(()) => return Ok(()),
                Err(codes) => codes,
            };
            let failed = |part: Part| {
                parts
                    .iter()
                    .position(|p| *p == part)
                    .is_some_and(|i| codes.get(i).is_some_and(|c| c == CONDITION_FAILED))
            };
            if codes.is_empty() || failed(Part::User) {
                let changed = |c: &User| {
                    c.username != user.username || c.email != user.email || c.password_hash != user.password_hash
                };
                return match self.get_user(user.id).await? {
                    None => Err(StoreError::UserNotFound),
                    Some(current) if failed(Part::User) || changed(&current) => Err(StoreError::Stale),
                    // Unchanged, so a claim was in the way (no reasons given): look at the skeleton.
                    Some(_) if with_skeleton && self.skeleton_held_by_another(user).await? => {
                        with_skeleton = false;
                        continue;
                    }
                    Some(_) => Err(cancelled(&codes)),
                };
            }
            if failed(Part::Skeleton) {
                with_skeleton = false;
                continue;
            }
            if failed(Part::Username) || failed(Part::Email) {
                return Err(StoreError::Backend(format!("a claim of user {} belongs to another user", user.id)));
            }
            return Err(cancelled(&codes));
        }
        Err(StoreError::Backend(format!("the items of user {} could not be deleted", user.id)))
    }
}

impl DynamoStore {
    async fn skeleton_held_by_another(&self, user: &User) -> StoreResult<bool> {
        let item = self.get(&self.tables.users, pk(skeleton_claim(&user.username))).await?;
        Ok(match item {
            Some(item) => number::<u64>(&item, "user_id")? != user.id,
            None => false,
        })
    }
}
