//! `ThrottleStore`: per-window counters, reserved by conditional updates.

use super::*;

/// Reads and tries of one reservation before a contended attempt is refused.
const RESERVE_ATTEMPTS: usize = 3;

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

    /// A transaction's `Update` sent on its own, for a single item; `false` when its condition
    /// refused it.
    async fn update_alone(&self, update: Update) -> StoreResult<bool> {
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
        condition_held(result)
    }

    /// Each rule's usage at `now` and the count of the window after `now`'s (consistent reads).
    async fn usages(&self, rules: &[Rule], now: i64) -> StoreResult<(Vec<Usage>, Vec<u64>)> {
        let keys: Vec<String> = rules
            .iter()
            .flat_map(|r| {
                let (c, p) = r.keys(now);
                [c, p, r.next_key(now)]
            })
            .collect();
        let counts = self.counter_values(&keys, now).await?;
        let count = |key: &String| counts.get(key).copied().unwrap_or(0);
        let usages = keys.chunks(3).map(|k| Usage { current: count(&k[0]), previous: count(&k[1]) }).collect();
        Ok((usages, keys.chunks(3).map(|k| count(&k[2])).collect()))
    }

    /// A transaction's check that the counter `key` is at most `seen` (a missing row counts 0).
    fn count_at_most(&self, key: String, seen: u64) -> StoreResult<TransactWriteItem> {
        let check = built(
            ConditionCheck::builder()
                .table_name(&self.tables.throttle)
                .key(THROTTLE_KEY, s(&key))
                .condition_expression("attribute_not_exists(#count) OR #count <= :seen")
                .expression_attribute_names("#count", "count")
                .expression_attribute_values(":seen", n(seen))
                .build(),
        )?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
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
        // Read, decide, then count in one transaction whose conditions hold the decision's
        // inputs: each current window stays below the ceiling the decision left, each previous
        // window at most at the count it used (a request of that window may still be in flight),
        // and each next window still without counts (else this attempt was served late, after
        // attempts of the next window read this one as closed: it is counted there instead).
        // A failed condition means a read, a new decision and another try; of parallel attempts,
        // no more than the limit get through, also across a window boundary.
        let mut now = now;
        let mut known = known.filter(|usages| usages.len() == rules.len()).map(<[Usage]>::to_vec);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let usages = match known.take() {
                Some(usages) => usages,
                None => {
                    let (usages, next) = self.usages(rules, now).await?;
                    match throttle::served_late_at(rules, &next, now) {
                        Some(later) => {
                            now = later;
                            self.usages(rules, now).await?.0
                        }
                        None => usages,
                    }
                }
            };
            if let Some(retry_after) = throttle::refusal(rules, &usages, now) {
                return Ok(Admission::Refused { retry_after });
            }
            let ceilings: Vec<u64> =
                rules.iter().zip(&usages).map(|(r, u)| r.limit.current_ceiling(u.previous, now)).collect();
            let mut items = Vec::with_capacity(3 * rules.len());
            for ((rule, usage), ceiling) in rules.iter().zip(&usages).zip(&ceilings) {
                let (_, previous) = rule.keys(now);
                items.push(TransactWriteItem::builder().update(self.reserve_update(rule, *ceiling, now)?).build());
                items.push(self.count_at_most(previous, usage.previous)?);
                items.push(self.count_at_most(rule.next_key(now), 0)?);
            }
            let keys: Vec<String> = rules.iter().map(|r| r.keys(now).0).collect();
            let failed = match self.transact(items).await? {
                Ok(()) => return Ok(Admission::Admitted(Reservation { keys })),
                Err(codes) if codes.iter().any(|c| c == CONDITION_FAILED) => {
                    // By rule: whether one of its three conditions failed.
                    codes.chunks(3).map(|c| c.iter().any(|c| c == CONDITION_FAILED)).collect::<Vec<bool>>()
                }
                // No reasons given: assume every counter is full (refusing is the safe side).
                Err(codes) if codes.is_empty() => vec![true; rules.len()],
                Err(codes) => return Err(cancelled(&codes)),
            };
            if attempt == RESERVE_ATTEMPTS {
                // Still contended: refuse as if the failed counters had reached their ceilings.
                let at_ceiling: Vec<Usage> = usages
                    .iter()
                    .zip(&ceilings)
                    .enumerate()
                    .map(|(i, (u, c))| {
                        if failed.get(i).copied().unwrap_or(true) {
                            Usage { previous: u.previous, current: *c }
                        } else {
                            *u
                        }
                    })
                    .collect();
                return Ok(Admission::Refused { retry_after: throttle::refusal(rules, &at_ceiling, now).unwrap_or(1) });
            }
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
            // A refused condition: nothing left to give back (the row expired).
            self.update_alone(give_back(key)?).await?;
        }
        Ok(())
    }

    async fn clear_counters(&self, keys: &[String]) -> StoreResult<()> {
        for key in keys {
            self.client
                .delete_item()
                .table_name(&self.tables.throttle)
                .key(THROTTLE_KEY, s(key))
                .send()
                .await
                .map_err(sdk_error)?;
        }
        Ok(())
    }

    async fn login_lookup(&self, username: &str, rules: &[Rule], now: i64) -> StoreResult<(Option<User>, Vec<Usage>)> {
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
