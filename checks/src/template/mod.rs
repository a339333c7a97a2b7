//! `template.yaml` agrees with the code: one function per endpoint with exactly its routes, the
//! `functions/` crates, the shape of each function's IAM policy (named actions on the template's own
//! tables, key prefixes and SES identity; what each function may do is checked against its real
//! calls in `iam_calls.rs`), the tables of the DynamoDB design and only environment variables the
//! service reads.
//!
//! Every check is a function from the parsed template to a list of problems, so that the tests
//! (one submodule per concern) can prove each one notices drift (they break an in-memory copy of
//! the template). This module reads the template; the submodules check it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use accounts::config::{vars, Config, StorageConfig};
use accounts::http::{Endpoint, CATCH_ALL_FUNCTION};
use accounts::store::dynamodb::{BY_USER_INDEX, TTL_ATTRIBUTE};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_yaml::{Mapping, Value};
use tower::ServiceExt;

// ----- the facts the template is checked against ------------------------------------------------

/// Every variable `accounts::config` reads (the `vars` module). Kept in sync with the source by
/// `config_vars_list_is_complete` below.
const CONFIG_VARS: &[&str] = vars::ALL;

/// Variables read outside `Config`: the log filter and format of `accounts::lambda::init_tracing`.
const RUNTIME_VARS: &[&str] = &["RUST_LOG", "LOG_FORMAT"];

/// Functions that hash passwords (argon2id, m = 19 MiB): CPU-bound, so they get more memory.
const HASHING: &[Endpoint] = &[
    Endpoint::Registration,
    Endpoint::Login,
    Endpoint::PasswordChange,
    Endpoint::PasswordResetConfirm,
    Endpoint::AccountDeletion,
];
const HASHING_MIN_MEMORY: i64 = 1024;

/// The SES actions a statement grants; each must be a named action on exactly the identity of
/// the `SesIdentity` parameter (`arn:...:ses:<region>:<account>:identity/${SesIdentity}`).
fn ses_grants(id: &str, statement: &Value, problems: &mut Vec<String>) -> BTreeSet<String> {
    const IDENTITY: &str = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SesIdentity}";
    let mut granted = BTreeSet::new();
    for action in one_or_many(&statement["Action"]) {
        let action = action.as_str().unwrap_or("?").to_string();
        if action.contains('*') {
            problems.push(format!("{id}: action {action:?} is not one named SES action"));
            continue;
        }
        let resources = one_or_many(&statement["Resource"]);
        if resources.is_empty() || resources.iter().any(|r| sub(r) != Some(IDENTITY)) {
            problems.push(format!("{id}: {action} on {resources:?}, not only on the SesIdentity identity"));
        }
        granted.insert(action);
    }
    granted
}

/// The secrets a function may read: the key set named by the `JwtSecretId` parameter (a
/// secret's ARN is its name, `-` and six random characters), and during a cutover the old
/// service's key named by `LegacyJwtSecretId`.
const SIGNING_KEYS_SECRET: &str =
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${JwtSecretId}-??????";
const LEGACY_KEY_SECRET: &str =
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${LegacyJwtSecretId}-??????";

/// A Secrets Manager statement: `secretsmanager:GetSecretValue` on those secrets, nothing else.
fn secretsmanager_problems(id: &str, statement: &Value, problems: &mut Vec<String>) {
    for action in one_or_many(&statement["Action"]) {
        if action.as_str() != Some("secretsmanager:GetSecretValue") {
            problems.push(format!("{id}: {action:?} is not secretsmanager:GetSecretValue"));
        }
    }
    let resources = one_or_many(&statement["Resource"]);
    if resources.is_empty()
        || resources.iter().any(|r| !matches!(sub(r), Some(SIGNING_KEYS_SECRET | LEGACY_KEY_SECRET)))
    {
        problems.push(format!("{id}: a secret read on {resources:?}, not only on the JwtSecretId secret"));
    }
}

/// What an S3 statement grants, as `(action, prefix)` pairs on the template's one bucket:
/// object actions on `!Sub ${Bucket.Arn}/<prefix>`, `s3:ListBucket` on `!GetAtt Bucket.Arn`
/// with a `StringLike` `s3:prefix` condition (a listing of the whole bucket is a problem).
fn s3_grants(t: &Value, id: &str, statement: &Value, problems: &mut Vec<String>) -> BTreeSet<(String, String)> {
    let buckets: BTreeSet<String> = resources_of_type(t, "AWS::S3::Bucket").into_iter().map(|(b, _)| b).collect();
    let mut granted = BTreeSet::new();
    for action in one_or_many(&statement["Action"]) {
        let action = action.as_str().unwrap_or("?").to_string();
        if action.contains('*') || !action.starts_with("s3:") {
            problems.push(format!("{id}: action {action:?} is not one named S3 action"));
            continue;
        }
        for resource in one_or_many(&statement["Resource"]) {
            if action == "s3:ListBucket" {
                let on_bucket = get_att(resource).is_some_and(|(b, att)| att == "Arn" && buckets.contains(&b));
                let prefixes = one_or_many(&statement["Condition"]["StringLike"]["s3:prefix"]);
                if !on_bucket || prefixes.is_empty() {
                    problems.push(format!(
                        "{id}: s3:ListBucket not on a bucket of the template with an s3:prefix condition"
                    ));
                }
                for prefix in prefixes {
                    granted.insert((action.clone(), prefix.as_str().unwrap_or("?").to_string()));
                }
                continue;
            }
            let prefix = sub(resource).and_then(|s| s.strip_prefix("${")).and_then(|s| s.split_once(".Arn}/"));
            match prefix {
                Some((bucket, prefix)) if buckets.contains(bucket) && !prefix.is_empty() && prefix != "*" => {
                    granted.insert((action.clone(), prefix.to_string()));
                }
                _ => problems
                    .push(format!("{id}: {action} on {resource:?}, not on a key prefix of the template's bucket")),
            }
        }
    }
    granted
}

// ----- reading the template ----------------------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// `template.yaml` at the workspace root, or the file `ACCOUNTS_TEMPLATE` names (to try a
/// scratch copy).
fn template() -> Value {
    let path = std::env::var_os("ACCOUNTS_TEMPLATE").map(PathBuf::from).unwrap_or_else(|| root().join("template.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `(name, argument)` of an intrinsic function in short (`!Ref x`) or long (`{Ref: x}`) form,
/// with long names (`Fn::GetAtt`).
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let name = if tag == "Ref" || tag == "Condition" { tag.to_string() } else { format!("Fn::{tag}") };
            Some((name, &t.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next()?;
            let k = k.as_str()?;
            (k == "Ref" || k.starts_with("Fn::")).then(|| (k.to_string(), v))
        }
        _ => None,
    }
}

fn ref_target(v: &Value) -> Option<&str> {
    match intrinsic(v)? {
        (name, arg) if name == "Ref" => arg.as_str(),
        _ => None,
    }
}

/// `!GetAtt X.Arn` / `{Fn::GetAtt: [X, Arn]}` → `(X, Arn)`.
fn get_att(v: &Value) -> Option<(String, String)> {
    let (name, arg) = intrinsic(v)?;
    if name != "Fn::GetAtt" {
        return None;
    }
    match arg {
        Value::String(s) => s.split_once('.').map(|(a, b)| (a.to_string(), b.to_string())),
        Value::Sequence(seq) if seq.len() == 2 => Some((seq[0].as_str()?.to_string(), seq[1].as_str()?.to_string())),
        _ => None,
    }
}

/// The string of a `!Sub "..."` (the one-argument form).
fn sub(v: &Value) -> Option<&str> {
    match intrinsic(v)? {
        (name, arg) if name == "Fn::Sub" => arg.as_str(),
        _ => None,
    }
}

/// One value or a list of them; a conditional value (`!If [cond, a, b]`) stands for both of its
/// branches (`!Ref AWS::NoValue` for none), so a check sees what either choice deploys.
fn one_or_many(v: &Value) -> Vec<&Value> {
    let items: Vec<&Value> = match v {
        Value::Sequence(seq) => seq.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    items.into_iter().flat_map(branches).collect()
}

/// The values a (possibly conditional) value may take.
fn branches(v: &Value) -> Vec<&Value> {
    match intrinsic(v) {
        Some((name, Value::Sequence(args))) if name == "Fn::If" && args.len() == 3 => {
            args[1..].iter().flat_map(branches).collect()
        }
        Some((name, arg)) if name == "Ref" && arg.as_str() == Some("AWS::NoValue") => Vec::new(),
        _ => vec![v],
    }
}

fn resources(t: &Value) -> Vec<(String, &Value)> {
    t["Resources"]
        .as_mapping()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v))).collect())
        .unwrap_or_default()
}

fn resources_of_type<'a>(t: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    resources(t).into_iter().filter(|(_, r)| r["Type"].as_str() == Some(kind)).collect()
}

/// The serverless functions by binary (`Metadata.BuildProperties.Binary`, else the last part of
/// `CodeUri`): `binary → [logical id]`.
fn functions_by_binary(t: &Value) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, f) in resources_of_type(t, "AWS::Serverless::Function") {
        let binary = f["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                let uri = f["Properties"]["CodeUri"].as_str()?;
                Some(uri.trim_end_matches('/').rsplit('/').next()?.to_string())
            })
            .unwrap_or_default();
        map.entry(binary).or_default().push(id);
    }
    map
}

/// The function of an endpoint, when there is exactly one.
fn function_of(t: &Value, endpoint: Endpoint) -> Option<(String, &Value)> {
    let ids = functions_by_binary(t).remove(endpoint.function())?;
    let [id] = ids.as_slice() else { return None };
    let f = &t["Resources"][id.as_str()];
    Some((id.clone(), f))
}

/// A function property, falling back to `Globals.Function`.
fn property<'a>(t: &'a Value, f: &'a Value, name: &str) -> &'a Value {
    match &f["Properties"][name] {
        Value::Null => &t["Globals"]["Function"][name],
        v => v,
    }
}

/// The catch-all function (`$default`): `(logical id, resource)` when there is exactly one.
fn catch_all_function(t: &Value) -> Option<(String, &Value)> {
    let ids = functions_by_binary(t).remove(CATCH_ALL_FUNCTION)?;
    let [id] = ids.as_slice() else { return None };
    Some((id.clone(), &t["Resources"][id.as_str()]))
}

/// Every function of the route table, then the catch-all: `(logical id, resource)`.
fn all_functions(t: &Value) -> Vec<(String, &Value)> {
    Endpoint::ALL.iter().filter_map(|e| function_of(t, *e)).chain(catch_all_function(t)).collect()
}

/// `RegistrationFunction` for `registration`, `TokenRefreshFunction` for `token-refresh`.
fn logical_id(endpoint: Endpoint) -> String {
    function_logical_id(endpoint.function())
}

fn function_logical_id(function: &str) -> String {
    let pascal: String = function
        .split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    format!("{pascal}Function")
}

fn expected_routes(endpoint: Endpoint) -> BTreeSet<(String, String)> {
    let mut set = BTreeSet::new();
    for path in endpoint.paths() {
        for method in endpoint.methods() {
            set.insert((method.as_str().to_string(), path.to_string()));
        }
    }
    set
}

/// The HttpApi routes of a function, as written (duplicates kept).
fn routes_of(f: &Value) -> Vec<(String, String)> {
    let Some(events) = f["Properties"]["Events"].as_mapping() else { return Vec::new() };
    events
        .values()
        .filter(|e| e["Type"].as_str() == Some("HttpApi"))
        .map(|e| {
            let method = e["Properties"]["Method"].as_str().unwrap_or("ANY").to_ascii_uppercase();
            let path = e["Properties"]["Path"].as_str().unwrap_or("$default").to_string();
            (method, path)
        })
        .collect()
}

/// The table resource each table variable names: `USERS_TABLE → UsersTable`.
fn table_resources(t: &Value) -> BTreeMap<&'static str, String> {
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    let mut map = BTreeMap::new();
    for var in [vars::USERS_TABLE, vars::SESSIONS_TABLE, vars::BLACKLIST_TABLE, vars::THROTTLE_TABLE] {
        if let Some(target) = ref_target(&env[var]) {
            map.insert(var, target.to_string());
        }
    }
    map
}

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

fn function_mut<'a>(t: &'a mut Value, id: &str) -> &'a mut Value {
    t["Resources"].get_mut(id).unwrap_or_else(|| panic!("{id} in the template"))
}

fn events_mut<'a>(t: &'a mut Value, id: &str) -> &'a mut Mapping {
    function_mut(t, id)["Properties"]["Events"].as_mapping_mut().expect("events")
}

mod crates;
mod deployment;
mod environment;
mod functions;
mod iam;
mod routes;
mod tables;
