//! The shape of every policy: named actions on the template's own resources (what each function
//! really calls is `iam_calls`).

use super::*;

/// Each function's policy is inline statements of named actions on the template's own resources:
/// DynamoDB actions on its tables (or their indexes), S3 actions on key prefixes of its bucket,
/// SES actions on the `SesIdentity` identity. Which ones a function needs is `iam_calls.rs`'s
/// business: it checks them against the calls the function really makes.
fn iam_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let tables: BTreeMap<String, &Value> = resources_of_type(t, "AWS::DynamoDB::Table").into_iter().collect();
    for (id, f) in all_functions(t) {
        if !f["Properties"]["Role"].is_null() {
            problems.push(format!("{id}: a Role replaces the per-function policy"));
        }
        for policy in one_or_many(property(t, f, "Policies")) {
            let Some(statements) = policy.get("Statement") else {
                problems.push(format!("{id}: policy {policy:?} is not an inline policy document"));
                continue;
            };
            for statement in one_or_many(statements) {
                if statement["Effect"].as_str() != Some("Allow") {
                    problems.push(format!("{id}: statement {:?} is not a plain Allow", statement["Sid"]));
                }
                for key in ["NotAction", "NotResource", "Principal"] {
                    if !statement[key].is_null() {
                        problems.push(format!("{id}: statement {:?} uses {key}", statement["Sid"]));
                    }
                }
                let actions: Vec<String> = one_or_many(&statement["Action"])
                    .iter()
                    .map(|a| a.as_str().map(str::to_string).unwrap_or_else(|| format!("{a:?}")))
                    .collect();
                if !actions.is_empty() && actions.iter().all(|a| a.starts_with("secretsmanager:")) {
                    secretsmanager_problems(&id, statement, &mut problems);
                    continue;
                }
                if !actions.is_empty() && actions.iter().all(|a| a.starts_with("ses:")) {
                    ses_grants(&id, statement, &mut problems);
                    continue;
                }
                if !actions.is_empty() && actions.iter().all(|a| a.starts_with("s3:")) {
                    s3_grants(t, &id, statement, &mut problems);
                    continue;
                }
                for action in &actions {
                    if !action.starts_with("dynamodb:") || action.contains('*') {
                        problems.push(format!("{id}: action {action:?} is not one named DynamoDB action"));
                    }
                }
                for resource in one_or_many(&statement["Resource"]) {
                    let table = match (get_att(resource), sub(resource)) {
                        (Some((table, att)), _) if att == "Arn" => Some(table),
                        (_, Some(s)) => s
                            .strip_prefix("${")
                            .and_then(|s| s.split_once(".Arn}/index/"))
                            .filter(|(table, index)| {
                                tables.get(*table).is_some_and(|tb| {
                                    one_or_many(&tb["Properties"]["GlobalSecondaryIndexes"])
                                        .iter()
                                        .any(|i| i["IndexName"].as_str() == Some(index))
                                })
                            })
                            .map(|(table, index)| format!("{table}/index/{index}")),
                        _ => None,
                    };
                    match table {
                        Some(table) if tables.contains_key(table.split('/').next().unwrap_or_default()) => {}
                        _ => problems.push(format!(
                            "{id}: resource {resource:?} is not the ARN of one of the template's tables (or their indexes)"
                        )),
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn iam_statements_are_named_actions_on_the_templates_resources() {
    assert_none("IAM", iam_problems(&template()));
}

/// Statements that are not named actions on the template's own resources. (A named action the
/// function does not need, or one it lacks, is `iam_calls.rs`'s: it knows the real calls.)
#[test]
fn iam_of_another_shape_is_noticed() {
    let statement = |yaml: &str| -> Value { serde_yaml::from_str(yaml).unwrap() };
    for (id, extra, expected) in [
        ("TokenVerifyFunction", "{Effect: Allow, Action: 'dynamodb:*', Resource: !GetAtt UsersTable.Arn}", "not one named DynamoDB action"),
        ("ProfileFunction", "{Effect: Allow, Action: dynamodb:GetItem, Resource: '*'}", "\"*\""),
        ("ProfileFunction", "{Effect: Allow, Action: dynamodb:GetItem, Resource: 'arn:aws:dynamodb:us-east-1:1:table/other'}", "not the ARN of one of the template's tables"),
        ("ProfileFunction", "{Effect: Deny, Action: dynamodb:GetItem, Resource: !GetAtt UsersTable.Arn}", "not a plain Allow"),
        ("PasswordResetFunction", "{Effect: Allow, Action: ses:SendRawEmail, Resource: '*'}", "not only on the SesIdentity identity"),
        ("PasswordResetFunction", "{Effect: Allow, Action: 'ses:*', Resource: !Sub 'arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SesIdentity}'}", "not one named SES action"),
        ("ProfileFunction", "{Effect: Allow, Action: s3:GetObject, Resource: !Sub '${MediaBucket.Arn}/*'}", "not on a key prefix"),
        ("ProfileFunction", "{Effect: Allow, Action: s3:ListBucket, Resource: !GetAtt MediaBucket.Arn}", "s3:prefix condition"),
        ("ProfileFunction", "{Effect: Allow, Action: 's3:*', Resource: !Sub '${MediaBucket.Arn}/avatar/*'}", "not one named S3 action"),
        ("LoginFunction", "{Effect: Allow, Action: secretsmanager:GetSecretValue, Resource: '*'}", "not only on the JwtSecretId secret"),
        ("LoginFunction", "{Effect: Allow, Action: secretsmanager:GetSecretValue, Resource: !Sub 'arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${JwtSecretId}*'}", "not only on the JwtSecretId secret"),
        ("LoginFunction", "{Effect: Allow, Action: 'secretsmanager:*', Resource: !Sub 'arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${JwtSecretId}-??????'}", "is not secretsmanager:GetSecretValue"),
    ] {
        let mut t = template();
        function_mut(&mut t, id)["Properties"]["Policies"][0]["Statement"].as_sequence_mut().unwrap().push(statement(extra));
        let problems = iam_problems(&t);
        assert!(problems.iter().any(|p| p.contains(expected)), "{id} + {extra}: {problems:?}");
    }
    // A managed policy instead of an inline statement.
    let mut t = template();
    function_mut(&mut t, "ProfileFunction")["Properties"]["Policies"] =
        serde_yaml::from_str("[AmazonDynamoDBFullAccess]").unwrap();
    assert!(!iam_problems(&t).is_empty());
}
