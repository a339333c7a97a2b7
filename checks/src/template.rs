//! `template.yaml` agrees with the code: one function per endpoint with exactly its routes, the
//! `functions/` crates, the shape of each function's IAM policy (named actions on the template's own
//! tables, key prefixes and SES identity; what each function may do is checked against its real
//! calls in `iam_calls.rs`), the tables of the DynamoDB design and only environment variables the
//! service reads.
//!
//! Every check is a function from the parsed template to a list of problems, so that the tests
//! at the end can prove each one notices drift (they break an in-memory copy of the template).

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
const HASHING: &[Endpoint] =
    &[Endpoint::Registration, Endpoint::Login, Endpoint::PasswordChange, Endpoint::PasswordResetConfirm];
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

/// The one secret a function may read: the key set named by the `JwtSecretId` parameter (a
/// secret's ARN is its name, `-` and six random characters).
const SIGNING_KEYS_SECRET: &str =
    "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${JwtSecretId}-??????";

/// A Secrets Manager statement: `secretsmanager:GetSecretValue` on the signing keys' secret, nothing else.
fn secretsmanager_problems(id: &str, statement: &Value, problems: &mut Vec<String>) {
    for action in one_or_many(&statement["Action"]) {
        if action.as_str() != Some("secretsmanager:GetSecretValue") {
            problems.push(format!("{id}: {action:?} is not secretsmanager:GetSecretValue"));
        }
    }
    let resources = one_or_many(&statement["Resource"]);
    if resources.is_empty() || resources.iter().any(|r| sub(r) != Some(SIGNING_KEYS_SECRET)) {
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

/// One value or a list of them.
fn one_or_many(v: &Value) -> Vec<&Value> {
    match v {
        Value::Sequence(seq) => seq.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
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

// ----- the checks ----------------------------------------------------------------------------------

/// One function per endpoint, named after it, built as that binary of the workspace, and no other.
fn function_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let by_binary = functions_by_binary(t);
    for endpoint in Endpoint::ALL {
        match by_binary.get(endpoint.function()).map(Vec::as_slice) {
            None | Some([]) => problems.push(format!("no function builds {:?}", endpoint.function())),
            Some([id]) => {
                if *id != logical_id(*endpoint) {
                    problems.push(format!("{id} builds {:?}: call it {}", endpoint.function(), logical_id(*endpoint)));
                }
                let f = &t["Resources"][id.as_str()];
                let expect = |problems: &mut Vec<String>, what: &str, got: &Value, want: &str| {
                    if got.as_str() != Some(want) {
                        problems.push(format!("{id}: {what} is {got:?}, not {want:?}"));
                    }
                };
                expect(&mut problems, "Metadata.BuildMethod", &f["Metadata"]["BuildMethod"], "rust-cargolambda");
                // The crate's own folder: built there, it links only the features it names.
                expect(
                    &mut problems,
                    "CodeUri",
                    property(t, f, "CodeUri"),
                    &format!("functions/{}", endpoint.function()),
                );
                expect(&mut problems, "Handler", property(t, f, "Handler"), "bootstrap");
                expect(&mut problems, "Runtime", property(t, f, "Runtime"), "provided.al2023");
                let arch: Vec<_> =
                    one_or_many(property(t, f, "Architectures")).iter().filter_map(|v| v.as_str()).collect();
                if arch != ["arm64"] {
                    problems.push(format!("{id}: Architectures is {arch:?}, not [arm64]"));
                }
                // API Gateway gives up on an integration after 30 s.
                match property(t, f, "Timeout").as_i64() {
                    Some(1..=29) => {}
                    other => problems.push(format!("{id}: Timeout {other:?} is not within 1..=29 s")),
                }
                let memory = property(t, f, "MemorySize").as_i64().unwrap_or(128);
                if HASHING.contains(endpoint) && memory < HASHING_MIN_MEMORY {
                    problems.push(format!("{id} hashes passwords: MemorySize {memory} < {HASHING_MIN_MEMORY}"));
                }
            }
            Some(ids) => problems.push(format!("{:?} is built by several functions: {ids:?}", endpoint.function())),
        }
    }
    match by_binary.get(CATCH_ALL_FUNCTION).map(Vec::as_slice) {
        Some([id]) if *id == function_logical_id(CATCH_ALL_FUNCTION) => {
            let f = &t["Resources"][id.as_str()];
            if property(t, f, "CodeUri").as_str() != Some("functions/not-found") {
                problems.push(format!("{id}: CodeUri is not functions/{CATCH_ALL_FUNCTION}"));
            }
        }
        other => problems.push(format!(
            "the catch-all function {CATCH_ALL_FUNCTION:?} is built by {other:?}, not by one NotFoundFunction"
        )),
    }
    for (binary, ids) in &by_binary {
        if Endpoint::from_function(binary).is_none() && binary != CATCH_ALL_FUNCTION {
            problems.push(format!("{ids:?} build {binary:?}, which is no endpoint"));
        }
    }
    problems
}

/// Each function's HttpApi events are exactly its endpoint's paths × methods, on the template's
/// HTTP API, and no function has other event sources.
fn route_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let apis: BTreeSet<String> =
        resources_of_type(t, "AWS::Serverless::HttpApi").into_iter().map(|(id, _)| id).collect();
    if apis.len() != 1 {
        problems.push(format!("expected one AWS::Serverless::HttpApi, found {apis:?}"));
    }
    for (id, api) in resources_of_type(t, "AWS::Serverless::HttpApi") {
        if api["Properties"]["StageName"].as_str() != Some("$default") {
            problems.push(format!("{id}: StageName is not $default"));
        }
    }
    let mut owner: BTreeMap<(String, String), String> = BTreeMap::new();
    for (id, f) in resources_of_type(t, "AWS::Serverless::Function") {
        if let Some(events) = f["Properties"]["Events"].as_mapping() {
            for (name, e) in events {
                let name = name.as_str().unwrap_or("?");
                if e["Type"].as_str() != Some("HttpApi") {
                    problems.push(format!("{id}.{name}: event type {:?} is not HttpApi", e["Type"]));
                    continue;
                }
                match ref_target(&e["Properties"]["ApiId"]) {
                    Some(api) if apis.contains(api) => {}
                    _ => problems.push(format!("{id}.{name}: ApiId is not !Ref of the template's HttpApi")),
                }
            }
        }
        for route in routes_of(f) {
            if let Some(other) = owner.insert(route.clone(), id.clone()) {
                problems.push(format!("{} {} is routed by {other} and {id}", route.0, route.1));
            }
        }
    }
    let all_expected: BTreeSet<_> = Endpoint::ALL.iter().flat_map(|e| expected_routes(*e)).collect();
    // The catch-all route: its function answers what the routes above do not take.
    let default_route = ("ANY".to_string(), "$default".to_string());
    match (owner.get(&default_route), catch_all_function(t)) {
        (Some(owner), Some((id, _))) if *owner == id => {}
        (owner, _) => problems
            .push(format!("the $default route is routed by {owner:?}, not by the {CATCH_ALL_FUNCTION} function")),
    }
    if let Some((id, f)) = catch_all_function(t) {
        if routes_of(f) != [default_route.clone()] {
            problems.push(format!("{id} has routes {:?}: only $default", routes_of(f)));
        }
    }
    for route in owner.keys() {
        if !all_expected.contains(route) && *route != default_route {
            problems.push(format!("{} {} is in the template but not in the route table", route.0, route.1));
        }
    }
    for endpoint in Endpoint::ALL {
        let Some((id, f)) = function_of(t, *endpoint) else { continue };
        let routes = routes_of(f);
        let got: BTreeSet<_> = routes.iter().cloned().collect();
        let want = expected_routes(*endpoint);
        for (method, path) in want.difference(&got) {
            problems.push(format!("{id} lacks the route {method} {path}"));
        }
        for (method, path) in got.difference(&want) {
            problems.push(format!("{id} has the route {method} {path}, which {:?} does not answer", endpoint));
        }
        if routes.len() != got.len() {
            problems.push(format!("{id} lists a route twice"));
        }
    }
    problems
}

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

/// Only variables the service reads; the ones the cloud needs are set, and the key is never a
/// literal or a parameter.
fn environment_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let known: BTreeSet<&str> = CONFIG_VARS.iter().chain(RUNTIME_VARS).copied().collect();
    let mut places: Vec<(String, &Value)> =
        vec![("Globals".to_string(), &t["Globals"]["Function"]["Environment"]["Variables"])];
    for (id, f) in resources_of_type(t, "AWS::Serverless::Function") {
        places.push((id, &f["Properties"]["Environment"]["Variables"]));
    }
    for (place, variables) in &places {
        for name in variables.as_mapping().map(|m| m.keys().collect::<Vec<_>>()).unwrap_or_default() {
            let name = name.as_str().unwrap_or("?");
            if !known.contains(name) {
                problems.push(format!("{place}: {name} is not a variable of accounts::config::vars"));
            }
        }
    }
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    if env[vars::STORAGE].as_str() != Some("dynamodb") {
        problems.push(format!("Globals: {} is not dynamodb", vars::STORAGE));
    }
    let tables = table_resources(t);
    for var in [vars::USERS_TABLE, vars::SESSIONS_TABLE, vars::BLACKLIST_TABLE] {
        match tables.get(var) {
            Some(id) if t["Resources"][id.as_str()]["Type"].as_str() == Some("AWS::DynamoDB::Table") => {}
            _ => problems.push(format!("Globals: {var} is not !Ref of a table of the template")),
        }
    }
    for var in [vars::ACCESS_TOKEN_LIFETIME, vars::REFRESH_TOKEN_LIFETIME, "RUST_LOG"] {
        match ref_target(&env[var]) {
            Some(p) if !t["Parameters"][p].is_null() => {}
            _ => problems.push(format!("Globals: {var} is not !Ref of a parameter")),
        }
    }
    // The keys are read from Secrets Manager at start: the environment names the secret, and
    // holds no key (not even a dynamic reference, which CloudFormation resolves into the
    // function's configuration, readable with lambda:GetFunctionConfiguration).
    if ref_target(&env[vars::JWT_SECRET_ID]) != Some("JwtSecretId") {
        problems.push(format!("Globals: {} is not !Ref JwtSecretId", vars::JWT_SECRET_ID));
    }
    for (place, variables) in &places {
        for var in [vars::JWT_SECRET, vars::JWT_PRIVATE_KEY, vars::JWT_PREVIOUS_KEYS, vars::JWT_KEY_ID] {
            if !variables[var].is_null() {
                problems.push(format!(
                    "{place}: {var} puts a key in the environment (the key set of {} has it)",
                    vars::JWT_SECRET_ID
                ));
            }
        }
        if place != "Globals" && !variables[vars::JWT_SECRET_ID].is_null() {
            problems.push(format!("{place} overrides {}", vars::JWT_SECRET_ID));
        }
    }
    if let Some(params) = t["Parameters"].as_mapping() {
        for (name, p) in params {
            let name = name.as_str().unwrap_or("?");
            let lower = name.to_ascii_lowercase();
            let names_one = ["id", "arn", "name", "revision"].iter().any(|end| lower.ends_with(end));
            if (lower.contains("secret") || lower.contains("key")) && !names_one {
                problems.push(format!("parameter {name} looks like it carries a key, not the name of a secret"));
            }
            if lower.contains("secret") && !p["Default"].is_null() {
                problems.push(format!("parameter {name} has a default"));
            }
        }
    }
    problems
}

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

/// A log group with a retention for each function, and the API's URL as an output.
fn log_and_output_problems(t: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let groups: BTreeMap<String, &Value> = resources_of_type(t, "AWS::Logs::LogGroup")
        .into_iter()
        .filter_map(|(_, g)| Some((sub(&g["Properties"]["LogGroupName"])?.to_string(), g)))
        .collect();
    for (id, _) in resources_of_type(t, "AWS::Serverless::Function") {
        match groups.get(&format!("/aws/lambda/${{{id}}}")) {
            None => problems.push(format!("{id}: no log group /aws/lambda/${{{id}}}")),
            Some(g) if g["Properties"]["RetentionInDays"].is_null() => {
                problems.push(format!("{id}: its log group keeps logs forever"))
            }
            Some(_) => {}
        }
    }
    if t["Outputs"]["ApiUrl"]["Value"].is_null() {
        problems.push("no ApiUrl output".to_string());
    }
    problems
}

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ----- the tests ------------------------------------------------------------------------------------

#[test]
fn template_is_a_sam_template() {
    let t = template();
    assert_eq!(t["Transform"].as_str(), Some("AWS::Serverless-2016-10-31"));
    assert_eq!(resources_of_type(&t, "AWS::Serverless::Function").len(), Endpoint::ALL.len() + 1, "and the catch-all");
}

#[test]
fn one_function_per_endpoint() {
    assert_none("functions", function_problems(&template()));
}

#[test]
fn routes_match_the_route_table() {
    assert_none("routes", route_problems(&template()));
}

#[test]
fn iam_statements_are_named_actions_on_the_templates_resources() {
    assert_none("IAM", iam_problems(&template()));
}

#[test]
fn environment_holds_only_config_variables() {
    assert_none("environment", environment_problems(&template()));
}

#[test]
fn tables_match_the_dynamodb_design() {
    assert_none("tables", table_problems(&template()));
}

#[test]
fn every_function_has_a_log_group_and_the_api_an_output() {
    assert_none("logs and outputs", log_and_output_problems(&template()));
}

/// The environment the template gives a function, with `!Ref`s and the secret resolved to
/// stand-ins, is a valid DynamoDB configuration.
#[test]
fn template_environment_is_a_valid_config() {
    let t = template();
    let (_, f) = function_of(&t, Endpoint::Login).expect("login function");
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for variables in
        [&t["Globals"]["Function"]["Environment"]["Variables"], &f["Properties"]["Environment"]["Variables"]]
    {
        for (k, v) in variables.as_mapping().into_iter().flatten() {
            let value = match (v, ref_target(v), sub(v)) {
                (Value::String(s), _, _) => s.clone(),
                (_, Some(target), _) => match &t["Parameters"][target]["Default"] {
                    Value::Null => format!("{target}-value"),
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap().trim().to_string(),
                },
                (_, _, Some(s)) if s.contains("{{resolve:secretsmanager:") => "k".repeat(64),
                _ => panic!("{k:?}: unexpected value {v:?}"),
            };
            env.insert(k.as_str().unwrap().to_string(), value);
        }
    }
    let mut config =
        Config::from_lookup(|name| env.get(name).cloned()).expect("the template's environment is a valid Config");
    assert_eq!(
        config.key_set.as_ref().map(|k| k.secret_id.as_str()),
        Some("JwtSecretId-value"),
        "the keys come from the secret"
    );
    config.apply_key_set(&serde_json::json!({"current": "k1", "keys": {"k1": "k".repeat(32)}}).to_string()).unwrap();
    assert!(config.keys_ready());
    match config.storage {
        StorageConfig::DynamoDb { tables, endpoint } => {
            assert_eq!(tables.users, "UsersTable-value");
            assert_eq!(tables.sessions, "SessionsTable-value");
            assert_eq!(tables.blacklist, "BlacklistTable-value");
            assert_eq!(endpoint, None, "the cloud talks to the real DynamoDB");
        }
        other => panic!("storage is {other:?}"),
    }
}

/// `CONFIG_VARS` lists exactly the constants of `accounts::config::vars`.
#[test]
fn config_vars_list_is_complete() {
    let source = include_str!("../../shared/src/config.rs");
    let start = source.find("pub mod vars {").expect("pub mod vars in config.rs");
    let block = &source[start..];
    let block = &block[..block.find("\n}").expect("end of mod vars")];
    let declared: BTreeSet<&str> =
        block.lines().filter_map(|l| l.trim().strip_prefix("pub const ")).filter_map(|l| l.split('"').nth(1)).collect();
    let listed: BTreeSet<&str> = CONFIG_VARS.iter().copied().collect();
    assert_eq!(declared, listed, "update vars::ALL in shared/src/config.rs to list every variable");
}

/// `functions/<name>/` is a crate for each endpoint, serving that endpoint, and nothing else is there.
#[test]
fn function_crates_match_the_endpoints() {
    let dir = root().join("functions");
    let found: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut wanted: BTreeSet<String> = Endpoint::ALL.iter().map(|e| e.function().to_string()).collect();
    wanted.insert(CATCH_ALL_FUNCTION.to_string());
    assert_eq!(found, wanted, "functions/ and Endpoint::ALL (with the catch-all) differ");
    let main = std::fs::read_to_string(dir.join(CATCH_ALL_FUNCTION).join("src/main.rs")).unwrap();
    assert!(main.contains("serve_catch_all()"), "functions/{CATCH_ALL_FUNCTION} serves the catch-all router");
    for endpoint in Endpoint::ALL {
        let crate_dir = dir.join(endpoint.function());
        let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
        assert_eq!(package_name(&manifest), endpoint.function(), "package name of functions/{}", endpoint.function());
        let main = std::fs::read_to_string(crate_dir.join("src/main.rs")).unwrap();
        let serves = format!("Endpoint::{endpoint:?})");
        assert!(main.contains(&serves), "functions/{}/src/main.rs does not serve {serves}", endpoint.function());
    }
}

fn package_name(manifest: &str) -> String {
    let manifest: toml::Table = manifest.parse().expect("a Cargo manifest");
    manifest["package"]["name"].as_str().unwrap_or_default().to_string()
}

/// A TOML file (a Cargo manifest, samconfig.toml).
fn read_toml(path: &Path) -> toml::Table {
    std::fs::read_to_string(path).unwrap().parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn strings(v: Option<&toml::Value>) -> BTreeSet<String> {
    v.and_then(toml::Value::as_array)
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Each function crate links the backends its endpoint needs and no other (`Endpoint::needs`),
/// plus the embedded store behind its default `embedded` feature, which Lambda builds turn off.
fn function_feature_problems(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    // The catch-all needs nothing beyond what every function has (authentication, keys).
    let functions =
        Endpoint::ALL.iter().map(|e| (e.function(), e.needs())).chain([(CATCH_ALL_FUNCTION, Default::default())]);
    for (name, needs) in functions {
        let path = root.join("functions").join(name).join("Cargo.toml");
        let manifest = read_toml(&path);
        let accounts = manifest.get("dependencies").and_then(|d| d.get("accounts"));
        let features = strings(accounts.and_then(|a| a.get("features")));
        let wanted: BTreeSet<String> = needs.lambda_features().into_iter().map(String::from).collect();
        if features != wanted {
            problems.push(format!("functions/{name}: accounts features {features:?}, wanted {wanted:?}"));
        }
        let declared = manifest.get("features");
        if strings(declared.and_then(|f| f.get("default"))) != BTreeSet::from(["embedded".to_string()]) {
            problems.push(format!("functions/{name}: default features must be [\"embedded\"]"));
        }
        if strings(declared.and_then(|f| f.get("embedded"))) != BTreeSet::from(["accounts/sqlite".to_string()]) {
            problems.push(format!("functions/{name}: the `embedded` feature must be [\"accounts/sqlite\"]"));
        }
    }
    let workspace = read_toml(&root.join("Cargo.toml"));
    let build = &workspace["workspace"]["metadata"]["lambda"]["build"];
    if build.get("no_default_features").and_then(toml::Value::as_bool) != Some(true) {
        problems.push("Cargo.toml: [workspace.metadata.lambda.build] must set no_default_features = true".into());
    }
    if workspace["workspace"]["dependencies"]["accounts"].get("default-features").and_then(toml::Value::as_bool)
        != Some(false)
    {
        problems.push("Cargo.toml: the accounts workspace dependency must set default-features = false".into());
    }
    problems
}

/// The routes of `cargo lambda watch` (`[workspace.metadata.lambda.watch.router]`): `(method,
/// path, function)`.
fn watch_routes(workspace: &toml::Table) -> Result<BTreeSet<(String, String, String)>, String> {
    let router = workspace["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .ok_or("no [workspace.metadata.lambda.watch.router]")?;
    let mut routes = BTreeSet::new();
    for (path, targets) in router {
        // `"/path" = "function"`: every method.
        if let Some(function) = targets.as_str() {
            routes.insert(("*".to_string(), path.clone(), function.to_string()));
            continue;
        }
        for target in targets.as_array().ok_or(format!("{path}: not a function or a list of {{ method, function }}"))? {
            let method = target.get("method").and_then(|m| m.as_str()).ok_or(format!("{path}: no method"))?;
            let function = target.get("function").and_then(|m| m.as_str()).ok_or(format!("{path}: no function"))?;
            routes.insert((method.to_string(), path.clone(), function.to_string()));
        }
    }
    Ok(routes)
}

/// The methods `cargo lambda watch` routes to the catch-all on a path of the route table that does
/// not answer them (its router matches a path first, then the method, and does not fall back to
/// another path: without these, its own 404 would answer).
const WATCH_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fn route_table_routes() -> BTreeSet<(String, String, String)> {
    let mut routes: BTreeSet<(String, String, String)> = Endpoint::ALL
        .iter()
        .flat_map(|e| expected_routes(*e).into_iter().map(move |(m, p)| (m, p, e.function().to_string())))
        .collect();
    for endpoint in Endpoint::ALL {
        for path in endpoint.paths() {
            for method in WATCH_METHODS.iter().filter(|m| !endpoint.methods().iter().any(|e| e.as_str() == **m)) {
                routes.insert((method.to_string(), path.to_string(), CATCH_ALL_FUNCTION.to_string()));
            }
        }
    }
    // Every other path (the catch-all parameter matches no empty path: "/" on its own).
    for path in ["/", "/{*path}"] {
        routes.insert(("*".to_string(), path.to_string(), CATCH_ALL_FUNCTION.to_string()));
    }
    routes
}

#[test]
fn function_crates_link_only_what_their_endpoint_needs() {
    assert_none("function crate features", function_feature_problems(&root()));
}

#[test]
fn cargo_lambda_watch_routes_match_the_route_table() {
    let workspace = read_toml(&root().join("Cargo.toml"));
    let got = watch_routes(&workspace).unwrap();
    let wanted = route_table_routes();
    let missing: Vec<_> = wanted.difference(&got).collect();
    let extra: Vec<_> = got.difference(&wanted).collect();
    assert!(missing.is_empty() && extra.is_empty(), "watch router: missing {missing:?}, extra {extra:?}");
}

#[test]
fn a_stray_watch_route_or_feature_is_noticed() {
    let mut workspace = read_toml(&root().join("Cargo.toml"));
    let router = workspace["workspace"]["metadata"]["lambda"]["watch"]["router"].as_table_mut().unwrap();
    router.remove("/api/auth/login/");
    let got = watch_routes(&workspace).unwrap();
    assert!(!got.contains(&("POST".into(), "/api/auth/login/".into(), "login".into())));
    assert_ne!(got, route_table_routes());

    // A function that links S3 without needing it, in a copy of the tree's manifests.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("Cargo.toml"), dir.path().join("Cargo.toml")).unwrap();
    for function in Endpoint::ALL.iter().map(|e| e.function()).chain([CATCH_ALL_FUNCTION]) {
        let to = dir.path().join("functions").join(function);
        std::fs::create_dir_all(&to).unwrap();
        let mut manifest = std::fs::read_to_string(root().join("functions").join(function).join("Cargo.toml")).unwrap();
        if function == "login" {
            manifest = manifest.replace(
                r#"features = ["dynamodb", "secrets-manager"]"#,
                r#"features = ["dynamodb", "secrets-manager", "s3"]"#,
            );
        }
        std::fs::write(to.join("Cargo.toml"), manifest).unwrap();
    }
    let problems = function_feature_problems(dir.path());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("functions/login"), "{problems:?}");
}

/// Every route of the template reaches a handler of its function's router (no 404, no 405), and
/// the methods the template leaves out are refused by the router too.
#[tokio::test]
async fn template_routes_reach_the_router() {
    let t = template();
    let app = testkit::TestApp::new();
    let all_methods = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
    for endpoint in Endpoint::ALL {
        let (id, f) = function_of(&t, *endpoint).expect("a function per endpoint");
        let routes: BTreeSet<_> = routes_of(f).into_iter().collect();
        let router = accounts::http::router(&[*endpoint], app.state.clone());
        for path in endpoint.paths() {
            for method in &all_methods {
                // A path parameter (`{uid}`) is filled in with a sample value, as a client would.
                let concrete: String = path
                    .split('/')
                    .map(|segment| if segment.starts_with('{') { "1z" } else { segment })
                    .collect::<Vec<_>>()
                    .join("/");
                let request = Request::builder().method(method.clone()).uri(concrete).body(Body::empty()).unwrap();
                let status = router.clone().oneshot(request).await.unwrap().status();
                let routed = routes.contains(&(method.as_str().to_string(), path.to_string()));
                let answered = status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED;
                // A protected endpoint answers 401 to an anonymous caller before it checks the method.
                let refused = status == StatusCode::METHOD_NOT_ALLOWED
                    || (endpoint.requires_auth() && status == StatusCode::UNAUTHORIZED);
                if routed {
                    assert!(answered, "{id}: {method} {path} is routed by the template but the router says {status}");
                } else {
                    assert!(refused, "{id}: {method} {path} is not in the template but the router says {status}");
                }
            }
        }
    }
}

// ----- the checks notice drift ---------------------------------------------------------------------

fn function_mut<'a>(t: &'a mut Value, id: &str) -> &'a mut Value {
    t["Resources"].get_mut(id).unwrap_or_else(|| panic!("{id} in the template"))
}

fn events_mut<'a>(t: &'a mut Value, id: &str) -> &'a mut Mapping {
    function_mut(t, id)["Properties"]["Events"].as_mapping_mut().expect("events")
}

#[test]
fn a_missing_route_is_noticed() {
    let mut t = template();
    let events = events_mut(&mut t, "LoginFunction");
    let key = events
        .iter()
        .find(|(_, e)| e["Properties"]["Path"].as_str() == Some("/api/auth/login"))
        .map(|(k, _)| k.clone())
        .expect("the login route without the slash");
    events.remove(&key);
    let problems = route_problems(&t);
    assert!(problems.iter().any(|p| p.contains("lacks the route POST /api/auth/login")), "{problems:?}");
}

#[test]
fn a_missing_catch_all_route_is_noticed() {
    let mut t = template();
    events_mut(&mut t, "NotFoundFunction").clear();
    let problems = route_problems(&t);
    assert!(problems.iter().any(|p| p.contains("the $default route is routed by None")), "{problems:?}");
    // The catch-all routing a path of its own is drift too.
    let mut t = template();
    let stray: Value = serde_yaml::from_str(
        "{Type: HttpApi, Properties: {ApiId: !Ref AccountsApi, Method: GET, Path: /api/nothing/}}",
    )
    .unwrap();
    events_mut(&mut t, "NotFoundFunction").insert(Value::from("Stray"), stray);
    let problems = route_problems(&t);
    assert!(problems.iter().any(|p| p.contains("NotFoundFunction has routes")), "{problems:?}");
}

#[test]
fn an_extra_route_is_noticed() {
    let mut t = template();
    let extra: Value = serde_yaml::from_str(
        "{Type: HttpApi, Properties: {ApiId: !Ref AccountsApi, Method: DELETE, Path: /api/accounts/profile/}}",
    )
    .unwrap();
    events_mut(&mut t, "ProfileFunction").insert(Value::from("ProfileDelete"), extra);
    let unknown: Value = serde_yaml::from_str(
        "{Type: HttpApi, Properties: {ApiId: !Ref AccountsApi, Method: POST, Path: /api/auth/password/expire/}}",
    )
    .unwrap();
    events_mut(&mut t, "LoginFunction").insert(Value::from("PasswordExpire"), unknown);
    let problems = route_problems(&t);
    assert!(problems.iter().any(|p| p.contains("has the route DELETE /api/accounts/profile/")), "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains("/api/auth/password/expire/ is in the template but not in the route table")),
        "{problems:?}"
    );
}

#[test]
fn a_missing_or_extra_function_is_noticed() {
    let mut t = template();
    let resources = t["Resources"].as_mapping_mut().unwrap();
    let logout = resources.remove("LogoutFunction").unwrap();
    let mut stray = logout.clone();
    stray["Metadata"]["BuildProperties"]["Binary"] = Value::from("password-expire");
    resources.insert(Value::from("PasswordExpireFunction"), stray);
    let problems = function_problems(&t);
    assert!(problems.iter().any(|p| p.contains("no function builds \"logout\"")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("\"password-expire\", which is no endpoint")), "{problems:?}");
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

/// The bucket is private and encrypted, CloudFront reads only avatars, and the functions that
/// write media get the bucket and the media URL.
#[test]
fn media_bucket_is_private_and_served_by_cloudfront() {
    let t = template();
    let buckets = resources_of_type(&t, "AWS::S3::Bucket");
    let [(bucket_id, bucket)] = buckets.as_slice() else { panic!("one bucket: {buckets:?}") };
    let block = &bucket["Properties"]["PublicAccessBlockConfiguration"];
    for flag in ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"] {
        assert_eq!(block[flag].as_bool(), Some(true), "{flag}");
    }
    assert!(!bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"].is_null());
    let policies = resources_of_type(&t, "AWS::S3::BucketPolicy");
    let [(_, policy)] = policies.as_slice() else { panic!("one bucket policy") };
    for statement in one_or_many(&policy["Properties"]["PolicyDocument"]["Statement"]) {
        if statement["Effect"].as_str() == Some("Allow") {
            assert_eq!(statement["Principal"]["Service"].as_str(), Some("cloudfront.amazonaws.com"));
            assert_eq!(one_or_many(&statement["Action"]), vec![&Value::from("s3:GetObject")]);
            assert_eq!(sub(&statement["Resource"]), Some(format!("${{{bucket_id}.Arn}}/avatar/*").as_str()));
            assert!(!statement["Condition"]["StringEquals"]["AWS:SourceArn"].is_null(), "only our distribution");
        }
    }
    let distributions = resources_of_type(&t, "AWS::CloudFront::Distribution");
    let [(distribution_id, distribution)] = distributions.as_slice() else { panic!("one distribution") };
    let origin = &distribution["Properties"]["DistributionConfig"]["Origins"][0];
    assert!(get_att(&origin["OriginAccessControlId"]).is_some(), "origin access control");
    // The media URL: the MediaBaseUrl parameter when set, else the media domain when set, else
    // the distribution's own domain.
    let if_args = |v: &Value| -> Vec<Value> {
        match intrinsic(v) {
            Some((name, args)) if name == "Fn::If" => args.as_sequence().cloned().unwrap_or_default(),
            _ => Vec::new(),
        }
    };
    let media_url_problem = |v: &Value| -> Option<String> {
        let args = if_args(v);
        let inner = args.get(2).map(if_args).unwrap_or_default();
        let ok = args.len() == 3
            && args[0].as_str() == Some("HasMediaBaseUrl")
            && ref_target(&args[1]) == Some("MediaBaseUrl")
            && inner.len() == 3
            && inner[0].as_str() == Some("HasMediaDomain")
            && sub(&inner[1]) == Some("https://${MediaDomainName}/media/")
            && sub(&inner[2]) == Some(format!("https://${{{distribution_id}.DomainName}}/media/").as_str());
        (!ok).then(|| format!("{v:?}"))
    };
    for endpoint in Endpoint::ALL {
        let (id, f) = function_of(&t, *endpoint).unwrap();
        let env = &f["Properties"]["Environment"]["Variables"];
        if endpoint.needs().media {
            assert_eq!(ref_target(&env[vars::MEDIA_BUCKET]), Some(bucket_id.as_str()), "{id}");
            assert_eq!(ref_target(&env[vars::AVATAR_MAX_BYTES]), Some("AvatarMaxBytes"), "{id}");
            assert_eq!(media_url_problem(&env[vars::MEDIA_BASE_URL]), None, "{id}");
        } else {
            // Built without S3 (Endpoint::needs), it would refuse to start with a bucket.
            assert!(env[vars::MEDIA_BUCKET].is_null(), "{id} has no media, so no MEDIA_BUCKET");
        }
    }
    assert_eq!(media_url_problem(&t["Outputs"]["MediaUrl"]["Value"]), None, "MediaUrl output");
}

/// The optional domains: the API's on API Gateway (TLS 1.2, mapped to the $default stage), the
/// media's as a CloudFront alias (us-east-1 certificate, TLSv1.2_2021), each only when set, with
/// outputs; the reset link falls back to the API domain's link page.
#[test]
fn custom_domains_are_optional_and_tls_1_2() {
    let t = template();
    let condition_on = |name: &str, parameter: &str| {
        let c = &t["Conditions"][name];
        let text = serde_yaml::to_string(c).unwrap();
        assert!(text.contains(parameter) && text.contains("Not"), "{name}: {text}");
    };
    condition_on("HasApiDomain", "ApiCertificateArn");
    condition_on("HasMediaDomain", "MediaCertificateArn");
    for p in ["ApiDomainName", "ApiCertificateArn", "MediaDomainName", "MediaCertificateArn", "PasswordResetUrl"] {
        assert_eq!(t["Parameters"][p]["Default"].as_str(), Some(""), "{p} is optional");
    }
    assert!(
        t["Parameters"]["MediaCertificateArn"]["AllowedPattern"].as_str().unwrap().contains(":acm:us-east-1:"),
        "CloudFront takes us-east-1 certificates only"
    );
    let domains = resources_of_type(&t, "AWS::ApiGatewayV2::DomainName");
    let [(domain_id, domain)] = domains.as_slice() else { panic!("one API domain: {domains:?}") };
    assert_eq!(domain["Condition"].as_str(), Some("HasApiDomain"));
    let config = &domain["Properties"]["DomainNameConfigurations"][0];
    assert_eq!(
        (config["SecurityPolicy"].as_str(), config["EndpointType"].as_str()),
        (Some("TLS_1_2"), Some("REGIONAL"))
    );
    assert_eq!(ref_target(&config["CertificateArn"]), Some("ApiCertificateArn"));
    let mappings = resources_of_type(&t, "AWS::ApiGatewayV2::ApiMapping");
    let [(_, mapping)] = mappings.as_slice() else { panic!("one API mapping") };
    assert_eq!(mapping["Condition"].as_str(), Some("HasApiDomain"));
    assert_eq!(ref_target(&mapping["Properties"]["DomainName"]), Some(domain_id.as_str()));
    assert_eq!(ref_target(&mapping["Properties"]["ApiId"]), Some("AccountsApi"));
    let distribution = &resources_of_type(&t, "AWS::CloudFront::Distribution")[0].1["Properties"]["DistributionConfig"];
    let viewer = serde_yaml::to_string(&distribution["ViewerCertificate"]).unwrap();
    for needle in ["HasMediaDomain", "MediaCertificateArn", "sni-only", "TLSv1.2_2021", "CloudFrontDefaultCertificate"]
    {
        assert!(viewer.contains(needle), "ViewerCertificate lacks {needle}: {viewer}");
    }
    assert!(serde_yaml::to_string(&distribution["Aliases"]).unwrap().contains("MediaDomainName"));
    for output in ["ApiDomainUrl", "ApiDomainTarget", "MediaDomainTarget", "MediaUrl", "ApiUrl"] {
        assert!(!t["Outputs"][output]["Value"].is_null(), "output {output}");
    }
    let (_, reset) = function_of(&t, Endpoint::PasswordReset).unwrap();
    let url =
        serde_yaml::to_string(&reset["Properties"]["Environment"]["Variables"][vars::PASSWORD_RESET_URL]).unwrap();
    assert!(
        url.contains("HasResetUrl") && url.contains("https://${ApiDomainName}/password-reset/confirm/{uid}/{token}/"),
        "{url}"
    );
    // CloudFormation refuses a stack without a reset link domain.
    assert!(serde_yaml::to_string(&t["Rules"]).unwrap().contains("PasswordResetUrl"));
}

/// `events/env.json` (`sam local invoke --env-vars`) names only variables of the service that the
/// template declares (SAM overrides declared variables only and ignores the others in silence),
/// points every AWS client at an emulator, and with the template's environment makes a valid
/// configuration.
#[test]
fn env_json_overrides_declared_variables_only() {
    let t = template();
    let env_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("events/env.json")).unwrap()).unwrap();
    let overrides = env_json["Parameters"].as_object().expect("a Parameters object");
    let mut declared: BTreeSet<String> = BTreeSet::new();
    for (_, variables) in
        std::iter::once(("Globals".to_string(), &t["Globals"]["Function"]["Environment"]["Variables"])).chain(
            resources_of_type(&t, "AWS::Serverless::Function")
                .into_iter()
                .map(|(id, f)| (id, &f["Properties"]["Environment"]["Variables"])),
        )
    {
        declared
            .extend(variables.as_mapping().into_iter().flatten().filter_map(|(k, _)| k.as_str().map(str::to_string)));
    }
    for name in overrides.keys() {
        assert!(
            CONFIG_VARS.contains(&name.as_str()) || RUNTIME_VARS.contains(&name.as_str()),
            "env.json: {name} is not a variable of the service"
        );
        assert!(
            declared.contains(name),
            "env.json: {name} is declared by no function of the template, so SAM would ignore it"
        );
    }
    for endpoint in [vars::DYNAMODB_ENDPOINT, vars::S3_ENDPOINT, vars::SES_ENDPOINT, vars::SECRETS_MANAGER_ENDPOINT] {
        assert!(
            overrides[endpoint].as_str().is_some_and(|u| u.starts_with("http://")),
            "env.json: {endpoint} points at an emulator"
        );
    }
    // The template's globals (STORAGE=dynamodb...) with the overrides: a configuration.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in overrides {
        env.insert(k.clone(), v.as_str().unwrap().to_string());
    }
    env.insert(vars::STORAGE.into(), "dynamodb".into());
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("env.json makes a valid configuration");
    assert_eq!(config.key_set.map(|k| k.endpoint.is_some()), Some(true), "the keys come from the emulator's secret");
}

/// The avatar bound the template allows is what a multipart upload can carry into a Lambda
/// (`LAMBDA_AVATAR_MAX_BYTES`: 6 MB payload, base64), and its default starts.
#[test]
fn avatar_bound_parameter_fits_the_lambda_payload() {
    let t = template();
    let p = &t["Parameters"]["AvatarMaxBytes"];
    assert_eq!(p["MaxValue"].as_u64(), Some(accounts::config::LAMBDA_AVATAR_MAX_BYTES as u64));
    let default = p["Default"].as_u64().unwrap();
    assert!(default <= accounts::config::LAMBDA_AVATAR_MAX_BYTES as u64);
    let env = [
        ("STORAGE", "dynamodb".to_string()),
        ("JWT_SECRET", "k".repeat(32)),
        ("AWS_LAMBDA_FUNCTION_NAME", "profile".into()),
        ("AVATAR_MAX_BYTES", default.to_string()),
    ];
    let config = Config::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
        .expect("the default starts in Lambda");
    assert_eq!(config.media.avatar_max_bytes as u64, default);
}

#[test]
fn unknown_environment_variables_and_plain_secrets_are_noticed() {
    let mut t = template();
    t["Globals"]["Function"]["Environment"]["Variables"]["JWT_SECRET_KEY"] = Value::from("x");
    function_mut(&mut t, "LoginFunction")["Properties"]["Environment"] =
        serde_yaml::from_str("{Variables: {PASSWORD_PEPPER: abc}}").unwrap();
    let problems = environment_problems(&t);
    assert!(problems.iter().any(|p| p.contains("JWT_SECRET_KEY is not a variable")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("LoginFunction: PASSWORD_PEPPER")), "{problems:?}");

    let mut t = template();
    t["Parameters"]["JwtSecret"] =
        serde_yaml::from_str("{Type: String, NoEcho: true, Default: not-so-secret}").unwrap();
    t["Globals"]["Function"]["Environment"]["Variables"]["JWT_SECRET"] =
        serde_yaml::from_str("!Ref JwtSecret").unwrap();
    let problems = environment_problems(&t);
    assert!(problems.iter().any(|p| p.contains("Globals: JWT_SECRET puts a key in the environment")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("parameter JwtSecret")), "{problems:?}");

    // The old way: the key resolved by CloudFormation into every function's configuration.
    let mut t = template();
    let env = t["Globals"]["Function"]["Environment"]["Variables"].as_mapping_mut().unwrap();
    env.remove(vars::JWT_SECRET_ID);
    env.insert(
        Value::from(vars::JWT_SECRET),
        serde_yaml::from_str("!Sub '{{resolve:secretsmanager:${JwtSecretId}:SecretString}}'").unwrap(),
    );
    function_mut(&mut t, "LoginFunction")["Properties"]["Environment"] =
        serde_yaml::from_str("{Variables: {JWT_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----'}}").unwrap();
    let problems = environment_problems(&t);
    assert!(problems.iter().any(|p| p.contains("JWT_SECRET_ID is not !Ref JwtSecretId")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("Globals: JWT_SECRET puts a key")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("LoginFunction: JWT_PRIVATE_KEY puts a key")), "{problems:?}");
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

/// SAM's build cache keys a function on its CodeUri folder (`functions/<name>`) alone, so it
/// would keep a stale binary after a change in shared/: every environment builds uncached.
#[test]
fn sam_builds_are_never_cached() {
    let config = read_toml(&root().join("samconfig.toml"));
    let mut environments = 0;
    for (env, table) in &config {
        let Some(build) = table.get("build").and_then(|b| b.get("parameters")) else { continue };
        environments += 1;
        assert_eq!(
            build.get("cached").and_then(toml::Value::as_bool),
            Some(false),
            "samconfig.toml [{env}.build.parameters] cached"
        );
        assert_eq!(
            build.get("beta_features").and_then(toml::Value::as_bool),
            Some(true),
            "[{env}.build.parameters] beta_features (rust-cargolambda)"
        );
    }
    assert!(environments >= 3, "default, dev and prod build parameters");
}

/// The template's parameters without a default (`JwtSecretId`, `PasswordResetUrl`) that a
/// `samconfig.toml` deploy environment leaves unset: `sam deploy --config-env <env>` would stop
/// there and ask.
fn samconfig_problems(t: &Value, config: &toml::Table) -> Vec<String> {
    let required: Vec<&str> = t["Parameters"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter(|(_, p)| p["Default"].is_null())
        .filter_map(|(name, _)| name.as_str())
        .collect();
    let mut problems = Vec::new();
    for (env, table) in config {
        let Some(deploy) = table.get("deploy").and_then(|d| d.get("parameters")) else { continue };
        let set: BTreeMap<String, String> = strings(deploy.get("parameter_overrides"))
            .into_iter()
            .filter_map(|o| o.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect();
        // Defaults that work nowhere: the sender and its SES identity are each operator's.
        for name in required.iter().copied().chain(["MailFrom", "SesIdentity", "Stage"]) {
            if !set.contains_key(name) {
                problems.push(format!("samconfig.toml [{env}.deploy.parameters] does not set {name}"));
            }
        }
        // The sender belongs to the identity the reset function may send as.
        if let (Some(from), Some(identity)) = (set.get("MailFrom"), set.get("SesIdentity")) {
            let address = from.rsplit('<').next().unwrap_or_default().trim_end_matches('>');
            if address != identity && address.rsplit('@').next() != Some(identity.as_str()) {
                problems.push(format!(
                    "samconfig.toml [{env}]: MailFrom {from} is not an address of SesIdentity {identity}"
                ));
            }
        }
        // The secret the README's first step creates for this stage.
        if let (Some(secret), Some(stage)) = (set.get("JwtSecretId"), set.get("Stage")) {
            if *secret != format!("accounts/{stage}/jwt-secret") {
                problems.push(format!(
                    "samconfig.toml [{env}]: JwtSecretId {secret} is not accounts/{stage}/jwt-secret (README, Deploy)"
                ));
            }
        }
        // No reset link without a domain for it (the template's Rules).
        if set.get("PasswordResetUrl").is_none_or(|u| u.is_empty())
            && set.get("ApiDomainName").is_none_or(|d| d.is_empty())
        {
            problems.push(format!("samconfig.toml [{env}]: neither PasswordResetUrl nor ApiDomainName"));
        }
    }
    problems
}

#[test]
fn every_deploy_environment_sets_the_required_parameters() {
    let config = read_toml(&root().join("samconfig.toml"));
    assert_none("samconfig.toml", samconfig_problems(&template(), &config));
    // A sender left out or outside its identity, and a secret the deploy guide never made, are noticed.
    let mut broken = config.clone();
    let overrides = broken["prod"]["deploy"]["parameters"]["parameter_overrides"].as_array_mut().unwrap();
    overrides.retain(|o| !o.as_str().is_some_and(|o| o.starts_with("SesIdentity=")));
    for o in overrides.iter_mut() {
        if o.as_str().is_some_and(|o| o.starts_with("JwtSecretId=")) {
            *o = toml::Value::from("JwtSecretId=jwt");
        }
    }
    let overrides = broken["dev"]["deploy"]["parameters"]["parameter_overrides"].as_array_mut().unwrap();
    for o in overrides.iter_mut() {
        if o.as_str().is_some_and(|o| o.starts_with("MailFrom=")) {
            *o = toml::Value::from("MailFrom=noreply@elsewhere.example");
        }
    }
    let problems = samconfig_problems(&template(), &broken);
    assert!(problems.iter().any(|p| p.contains("[prod.deploy.parameters] does not set SesIdentity")), "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.contains("[dev]: MailFrom noreply@elsewhere.example is not an address of SesIdentity")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("[prod]: JwtSecretId jwt is not accounts/prod/jwt-secret")),
        "{problems:?}"
    );
}
