//! The tables against the DynamoDB design of `shared/src/store/dynamodb/`.

use super::*;

/// The tables of the DynamoDB design (`shared/src/store/dynamodb.rs`).
fn table_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let tables = table_resources(t);
    // `(name KeyType, attribute type)` of a key schema of the table.
    let key_of = |props: &Value, schema: &Value| -> Vec<(String, String)> {
        let types: BTreeMap<&str, &str> = one_or_many(&props["AttributeDefinitions"])
            .iter()
            .filter_map(|d| Some((d["AttributeName"].as_str()?, d["AttributeType"].as_str()?)))
            .collect();
        one_or_many(schema)
            .iter()
            .filter_map(|k| {
                let name = k["AttributeName"].as_str()?;
                Some((
                    format!("{name} {}", k["KeyType"].as_str()?),
                    types.get(name).copied().unwrap_or("?").to_string(),
                ))
            })
            .collect()
    };
    // (table variable, partition key, TTL, point-in-time recovery)
    let design: [(&str, &str, bool, bool); 4] = [
        (vars::USERS_TABLE, "pk", false, true),
        (vars::SESSIONS_TABLE, "session_id", true, true),
        (vars::BLACKLIST_TABLE, "jti", true, true),
        // Counters live a few minutes: nothing worth restoring.
        (vars::THROTTLE_TABLE, "key", true, false),
    ];
    for (var, key, ttl, pitr) in design {
        let Some(id) = tables.get(var) else { continue };
        let table = &t["Resources"][id.as_str()];
        let props = &table["Properties"];
        let keys = key_of(props, &props["KeySchema"]);
        if keys != [(format!("{key} HASH"), "S".to_string())] {
            problems.push(format!("{id}: key {keys:?} is not the partition key {key} (S)"));
        }
        if props["BillingMode"].as_str() != Some("PAY_PER_REQUEST") {
            problems.push(format!("{id}: BillingMode is not PAY_PER_REQUEST"));
        }
        if props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool().unwrap_or(false) != pitr {
            problems.push(format!("{id}: point-in-time recovery should be {}", if pitr { "on" } else { "off" }));
        }
        if props["SSESpecification"]["SSEEnabled"].as_bool() != Some(true) {
            problems.push(format!("{id}: SSE is off"));
        }
        if ref_target(&props["DeletionProtectionEnabled"]).is_none_or(|p| t["Parameters"][p].is_null()) {
            problems.push(format!("{id}: DeletionProtectionEnabled is not a parameter"));
        }
        let ttl_spec = &props["TimeToLiveSpecification"];
        let has_ttl =
            ttl_spec["Enabled"].as_bool() == Some(true) && ttl_spec["AttributeName"].as_str() == Some(TTL_ATTRIBUTE);
        if ttl != has_ttl {
            problems.push(format!("{id}: TTL on {TTL_ATTRIBUTE} should be {}", if ttl { "on" } else { "off" }));
        }
        let indexes = one_or_many(&props["GlobalSecondaryIndexes"]);
        if var == vars::SESSIONS_TABLE {
            let by_user = indexes.iter().find(|i| i["IndexName"].as_str() == Some(BY_USER_INDEX));
            match by_user {
                None => problems.push(format!("{id}: no index {BY_USER_INDEX}")),
                Some(index) => {
                    let keys = key_of(props, &index["KeySchema"]);
                    if keys != [("user_id HASH".to_string(), "N".to_string())] {
                        problems.push(format!("{id}: {BY_USER_INDEX} key {keys:?} is not user_id (N)"));
                    }
                    if index["Projection"]["ProjectionType"].as_str() != Some("KEYS_ONLY") {
                        problems.push(format!("{id}: {BY_USER_INDEX} does not project KEYS_ONLY"));
                    }
                }
            }
            if indexes.len() != 1 {
                problems.push(format!("{id}: {} indexes, expected only {BY_USER_INDEX}", indexes.len()));
            }
        } else if !indexes.is_empty() {
            problems.push(format!("{id}: has indexes the design does not use"));
        }
    }
    problems
}

#[test]
fn tables_match_the_dynamodb_design() {
    assert_none("tables", table_problems(&template()));
}

#[test]
fn table_drift_is_noticed() {
    let mut t = template();
    t["Resources"]["SessionsTable"]["Properties"]["GlobalSecondaryIndexes"][0]["Projection"]["ProjectionType"] =
        Value::from("ALL");
    t["Resources"]["BlacklistTable"]["Properties"].as_mapping_mut().unwrap().remove("TimeToLiveSpecification");
    let problems = table_problems(&t);
    assert!(problems.iter().any(|p| p.contains("KEYS_ONLY")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("BlacklistTable: TTL")), "{problems:?}");
}
