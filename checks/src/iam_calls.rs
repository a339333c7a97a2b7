//! Each function's IAM policy, as CloudFormation deploys it (`template.yaml` after the SAM
//! transform, `scripts/expand_template.py`), allows every AWS call the function really makes, and
//! grants nothing it never uses. Nothing here lists what the code calls: every endpoint's flows run
//! through its own router on the emulator (DynamoDB, S3 and SES in moto, real SDK clients), an SDK
//! interceptor records every request, and each request becomes the IAM authorisations AWS would
//! evaluate for it (action and resource ARN, with the `s3:prefix` of a listing).
//!
//! Why not moto's own IAM enforcement (`INITIAL_NO_AUTH_ACTION_COUNT`): moto 5.2 checks only
//! `<service>:<operation>` against `Resource: "*"` for DynamoDB and SES, so it cannot see a grant
//! on the wrong table; it checks `TransactWriteItems` as an action of its own (AWS authorises each
//! item as PutItem / UpdateItem / DeleteItem / ConditionCheckItem) and SES v2 `SendEmail` as
//! `ses:SendEmail` whatever its content (AWS: `ses:SendRawEmail` for Raw); and it evaluates
//! conditions without the request's context keys, so an `s3:prefix` condition always passes. (It
//! does check S3 object and bucket ARNs.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use accounts::config::{vars, Config};
use accounts::http::Endpoint;
use accounts::mail::ses::SesMailer;
use accounts::media::s3::S3Media;
use accounts::state::AppState;
use accounts::store::dynamodb::DynamoStore;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// moto's account and the region of the test clients: the ARNs of the calls and of the resolved
/// template must agree, and these are what moto would put in them.
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

// ----- recording the calls --------------------------------------------------------------------

/// One request an SDK client sent.
#[derive(Debug, Clone)]
struct Call {
    service: &'static str,
    operation: String,
    uri: String,
    body: Vec<u8>,
}

/// Records the requests of one client (`service`) into a log it shares with the others.
#[derive(Debug, Clone)]
struct Recorder {
    service: &'static str,
    log: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    fn for_service(&self, service: &'static str) -> Recorder {
        Recorder { service, log: self.log.clone() }
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_default();
        let request = context.request();
        let body = request.body().bytes().map(<[u8]>::to_vec).unwrap_or_default();
        self.log.lock().unwrap().push(Call { service: self.service, operation, uri: request.uri().to_string(), body });
        Ok(())
    }
}

/// What AWS authorises for one call: an action on a resource, with the condition keys the
/// request carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Authorisation {
    action: String,
    resource: String,
    context: BTreeMap<String, String>,
}

fn auth(action: &str, resource: String) -> Authorisation {
    Authorisation { action: action.into(), resource, context: BTreeMap::new() }
}

fn table_arn(table: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}")
}

/// DynamoDB: the JSON body names the tables; a transaction is authorised item by item.
fn dynamodb_authorisations(call: &Call) -> Vec<Authorisation> {
    let body: Value = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
    let one = |action: &str| {
        let table = body["TableName"].as_str().unwrap_or_else(|| panic!("{} without TableName", call.operation));
        let resource = match body["IndexName"].as_str() {
            Some(index) => format!("{}/index/{index}", table_arn(table)),
            None => table_arn(table),
        };
        vec![auth(action, resource)]
    };
    match call.operation.as_str() {
        op @ ("GetItem" | "PutItem" | "UpdateItem" | "DeleteItem" | "Query" | "Scan") => one(&format!("dynamodb:{op}")),
        op @ ("BatchGetItem" | "BatchWriteItem") => body["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(table, _)| auth(&format!("dynamodb:{op}"), table_arn(table)))
            .collect(),
        "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|item| item.as_object().into_iter().flatten())
            .map(|(kind, inner)| {
                let action = match kind.as_str() {
                    "Put" => "dynamodb:PutItem",
                    "Update" => "dynamodb:UpdateItem",
                    "Delete" => "dynamodb:DeleteItem",
                    "ConditionCheck" => "dynamodb:ConditionCheckItem",
                    "Get" => "dynamodb:GetItem",
                    other => panic!("transaction item {other}: map it to its IAM action"),
                };
                auth(action, table_arn(inner["TableName"].as_str().expect("TableName")))
            })
            .collect(),
        other => panic!("DynamoDB {other}: map it to its IAM action here"),
    }
}

/// `(bucket, key, query)` of a path-style S3 URL (`http://host/bucket/key?query`), decoded.
fn s3_location(url: &str) -> (String, String, BTreeMap<String, String>) {
    let url = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let mut segments = url.path().trim_start_matches('/').splitn(2, '/');
    let decode = |s: &str| percent_decode(s);
    let bucket = decode(segments.next().unwrap_or_default());
    let key = decode(segments.next().unwrap_or_default());
    (bucket, key, url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// S3: object actions on `arn:aws:s3:::bucket/key`; a listing is `s3:ListBucket` on the bucket
/// with its `s3:prefix`; HeadObject is authorised as `s3:GetObject`.
fn s3_authorisations(operation: &str, url: &str) -> Vec<Authorisation> {
    let (bucket, key, query) = s3_location(url);
    let object = format!("arn:aws:s3:::{bucket}/{key}");
    match operation {
        "ListObjectsV2" | "ListObjects" => {
            let mut a = auth("s3:ListBucket", format!("arn:aws:s3:::{bucket}"));
            a.context.insert("s3:prefix".into(), query.get("prefix").cloned().unwrap_or_default());
            vec![a]
        }
        "GetObject" | "HeadObject" => vec![auth("s3:GetObject", object)],
        "PutObject" => vec![auth("s3:PutObject", object)],
        "DeleteObject" => vec![auth("s3:DeleteObject", object)],
        other => panic!("S3 {other}: map it to its IAM action here"),
    }
}

/// Secrets Manager GetSecretValue: `secretsmanager:GetSecretValue` on the secret's ARN (AWS
/// authorises a read by name against the full ARN, the name plus `-` and six random characters).
fn secretsmanager_authorisations(call: &Call, arns: &BTreeMap<String, String>) -> Vec<Authorisation> {
    assert_eq!(call.operation, "GetSecretValue", "Secrets Manager {}: map it to its IAM action here", call.operation);
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    let id = body["SecretId"].as_str().expect("SecretId");
    let arn = if id.starts_with("arn:") {
        id.to_string()
    } else {
        arns.get(id).unwrap_or_else(|| panic!("secret {id} of the test")).clone()
    };
    vec![auth("secretsmanager:GetSecretValue", arn)]
}

/// SES v2 SendEmail: `ses:SendRawEmail` for Raw content (`ses:SendEmail` for the others), on the
/// identity of the sender, the address or its domain (whichever is verified).
fn ses_authorisations(call: &Call) -> Vec<Authorisation> {
    assert_eq!(call.operation, "SendEmail", "SES {}: map it to its IAM action here", call.operation);
    let body: Value = serde_json::from_slice(&call.body).unwrap();
    let action = if body["Content"]["Raw"].is_null() { "ses:SendEmail" } else { "ses:SendRawEmail" };
    let from = body["FromEmailAddress"].as_str().expect("FromEmailAddress");
    let address = from.rsplit('<').next().unwrap().trim_end_matches('>');
    let domain = address.rsplit('@').next().unwrap();
    let mut a = auth(action, format!("arn:aws:ses:{REGION}:{ACCOUNT}:identity/{domain}"));
    a.context.insert("identity-address".into(), format!("arn:aws:ses:{REGION}:{ACCOUNT}:identity/{address}"));
    vec![a]
}

// ----- the policies as deployed ----------------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// `template.yaml` (or `ACCOUNTS_TEMPLATE`) after the SAM transform.
fn expanded_template() -> Value {
    let template =
        std::env::var_os("ACCOUNTS_TEMPLATE").map(PathBuf::from).unwrap_or_else(|| root().join("template.yaml"));
    let python = root().join(".venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/test (it installs the SAM translator)", python.display());
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = std::process::Command::new(python)
        .arg(root().join("scripts/expand_template.py"))
        .arg(&template)
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "expanding {}", template.display());
    serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap()
}

/// Values for `Ref`/`Fn::GetAtt`/`Fn::Sub`: parameters (their defaults), pseudo parameters and
/// the physical names the test gave the resources.
struct Names {
    refs: BTreeMap<String, String>,
    arns: BTreeMap<String, String>,
    /// The template's `Conditions`, evaluated with `refs` where a policy says `Fn::If`.
    conditions: serde_json::Map<String, Value>,
}

impl Names {
    fn new(t: &Value, tables: &BTreeMap<String, String>, bucket: &str) -> Names {
        let mut refs = BTreeMap::new();
        for (name, p) in t["Parameters"].as_object().into_iter().flatten() {
            let value = match &p["Default"] {
                Value::String(s) => s.clone(),
                Value::Null => format!("{name}-value"),
                other => other.to_string(),
            };
            refs.insert(name.clone(), value);
        }
        for (k, v) in [
            ("AWS::Partition", "aws"),
            ("AWS::Region", REGION),
            ("AWS::AccountId", ACCOUNT),
            ("AWS::URLSuffix", "amazonaws.com"),
        ] {
            refs.insert(k.into(), v.into());
        }
        let mut arns = BTreeMap::new();
        for (id, name) in tables {
            refs.insert(id.clone(), name.clone());
            arns.insert(id.clone(), table_arn(name));
        }
        for (id, r) in t["Resources"].as_object().into_iter().flatten() {
            if r["Type"] == "AWS::S3::Bucket" {
                refs.insert(id.clone(), bucket.into());
                arns.insert(id.clone(), format!("arn:aws:s3:::{bucket}"));
            }
        }
        Names { refs, arns, conditions: t["Conditions"].as_object().cloned().unwrap_or_default() }
    }

    /// Whether the template's condition `name` holds with these parameters.
    fn condition(&self, name: &str) -> bool {
        let expression = self.conditions.get(name).unwrap_or_else(|| panic!("condition {name}"));
        self.holds(expression)
    }

    fn holds(&self, v: &Value) -> bool {
        let (k, arg) = v.as_object().and_then(|m| m.iter().next()).unwrap_or_else(|| panic!("condition {v}"));
        let args = || arg.as_array().unwrap_or_else(|| panic!("{k} {arg}"));
        match k.as_str() {
            "Fn::Not" => !self.holds(&args()[0]),
            "Fn::And" => args().iter().all(|c| self.holds(c)),
            "Fn::Or" => args().iter().any(|c| self.holds(c)),
            "Fn::Equals" => {
                let text = |v: &Value| match self.resolve(v) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                text(&args()[0]) == text(&args()[1])
            }
            "Condition" => self.condition(arg.as_str().unwrap()),
            other => panic!("condition function {other}: evaluate it here"),
        }
    }

    fn get_att(&self, id: &str, att: &str) -> String {
        assert_eq!(att, "Arn", "Fn::GetAtt {id}.{att} in a policy: resolve it here");
        self.arns.get(id).unwrap_or_else(|| panic!("Fn::GetAtt {id}.Arn: not a table or bucket")).clone()
    }

    /// A policy value with its intrinsic functions resolved.
    fn resolve(&self, v: &Value) -> Value {
        match v {
            Value::Object(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().unwrap();
                match k.as_str() {
                    // Dropped from the list it is in (below).
                    "Ref" if arg == "AWS::NoValue" => Value::Null,
                    "Ref" => Value::String(
                        self.refs.get(arg.as_str().unwrap()).unwrap_or_else(|| panic!("Ref {arg}")).clone(),
                    ),
                    "Fn::If" => {
                        let args = arg.as_array().expect("Fn::If [condition, then, else]");
                        let chosen = if self.condition(args[0].as_str().unwrap()) { &args[1] } else { &args[2] };
                        self.resolve(chosen)
                    }
                    "Fn::GetAtt" => {
                        let (id, att) = (arg[0].as_str().unwrap(), arg[1].as_str().unwrap());
                        Value::String(self.get_att(id, att))
                    }
                    "Fn::Sub" => Value::String(self.sub(arg.as_str().expect("one-argument Fn::Sub"))),
                    _ => Value::Object(m.iter().map(|(k, v)| (k.clone(), self.resolve(v))).collect()),
                }
            }
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), self.resolve(v))).collect()),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.resolve(v)).filter(|v| !v.is_null()).collect()),
            other => other.clone(),
        }
    }

    fn sub(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("closing }") + start;
            let name = &rest[start + 2..end];
            out.push_str(&match name.split_once('.') {
                Some((id, att)) => self.get_att(id, att),
                None => self.refs.get(name).unwrap_or_else(|| panic!("${{{name}}}")).clone(),
            });
            rest = &rest[end + 1..];
        }
        out + rest
    }
}

/// A policy statement: its actions, resources and `StringLike` conditions, resolved.
#[derive(Debug, Clone)]
struct Statement {
    sid: String,
    actions: Vec<String>,
    resources: Vec<String>,
    string_like: BTreeMap<String, Vec<String>>,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(|x| x.as_str().expect("a string").to_string()).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Null => Vec::new(),
        other => panic!("{other}: not a string or a list of strings"),
    }
}

/// The inline policy statements of each function's role in the expanded template, by logical id
/// of the function (`LoginFunction`).
fn policies(t: &Value, names: &Names) -> BTreeMap<String, Vec<Statement>> {
    let resources = t["Resources"].as_object().unwrap();
    let mut out = BTreeMap::new();
    for (id, f) in resources {
        if f["Type"] != "AWS::Lambda::Function" {
            continue;
        }
        let role = f["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: Role is not a role of the stack"));
        let mut statements = Vec::new();
        for policy in resources[role]["Properties"]["Policies"].as_array().into_iter().flatten() {
            for s in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                let s = names.resolve(s);
                if s.is_null() {
                    continue;
                }
                assert_eq!(s["Effect"], "Allow", "{id}: only Allow statements are evaluated here");
                let mut string_like = BTreeMap::new();
                for (op, conditions) in s["Condition"].as_object().into_iter().flatten() {
                    assert_eq!(op, "StringLike", "{id}: condition {op}: evaluate it here");
                    for (key, values) in conditions.as_object().unwrap() {
                        string_like.insert(key.clone(), strings(values));
                    }
                }
                statements.push(Statement {
                    sid: s["Sid"].as_str().unwrap_or("?").to_string(),
                    actions: strings(&s["Action"]),
                    resources: strings(&s["Resource"]),
                    string_like,
                });
            }
        }
        out.insert(id.clone(), statements);
    }
    out
}

/// IAM's wildcard match (`*` any run, `?` one character), case-sensitive as for resources.
fn glob(pattern: &str, value: &str) -> bool {
    fn go(p: &[u8], v: &[u8]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), value.as_bytes())
}

/// The `(action, resource pattern)` pairs of `statement` that allow `a`.
fn allows(statement: &Statement, a: &Authorisation) -> Vec<(String, String)> {
    let conditions_hold = statement
        .string_like
        .iter()
        .all(|(key, patterns)| a.context.get(key).is_some_and(|value| patterns.iter().any(|p| glob(p, value))));
    if !conditions_hold {
        return Vec::new();
    }
    let mut resources = vec![a.resource.clone()];
    resources.extend(a.context.get("identity-address").cloned());
    let mut out = Vec::new();
    for action in &statement.actions {
        if !glob(&action.to_ascii_lowercase(), &a.action.to_ascii_lowercase()) {
            continue;
        }
        for pattern in &statement.resources {
            if resources.iter().any(|r| glob(pattern, r)) {
                out.push((action.clone(), pattern.clone()));
            }
        }
    }
    out
}

/// Every call of each function is allowed by its own policy, and every (action, resource) its
/// policy grants was needed by some call.
fn problems(policies: &BTreeMap<String, Vec<Statement>>, calls: &BTreeMap<String, Vec<Authorisation>>) -> Vec<String> {
    let mut problems = Vec::new();
    for (function, statements) in policies {
        let made = calls.get(function).map(Vec::as_slice).unwrap_or_default();
        let mut used: BTreeSet<(String, String, String)> = BTreeSet::new();
        for a in made {
            let mut allowed = false;
            for s in statements {
                for (action, resource) in allows(s, a) {
                    allowed = true;
                    used.insert((s.sid.clone(), action, resource));
                }
            }
            if !allowed {
                problems.push(format!("{function} is denied {} on {} {:?}", a.action, a.resource, a.context));
            }
        }
        for s in statements {
            for action in &s.actions {
                for resource in &s.resources {
                    if !used.contains(&(s.sid.clone(), action.clone(), resource.clone())) {
                        problems.push(format!("{function} grants {action} on {resource} (statement {}), which no call of its flows needed", s.sid));
                    }
                }
            }
        }
    }
    problems
}

// ----- the flows ---------------------------------------------------------------------------------

struct Cloud {
    state: AppState,
    recorder: Recorder,
    bucket: String,
    _dir: tempfile::TempDir,
    /// The requests of the last call, in order.
    last: Vec<Call>,
    /// The table resources of the template by the names the test gave them.
    tables: BTreeMap<String, String>,
    /// The signing keys' secret in moto: its name (the `JwtSecretId` parameter) and ARN.
    secret: (String, String),
    /// With legacy tokens: the old service's key's secret (`LegacyJwtSecretId`), name and ARN.
    legacy_secret: Option<(String, String)>,
    calls: BTreeMap<String, Vec<Authorisation>>,
}

impl Cloud {
    /// The stack's functions on moto; `legacy`: configured for a cutover (legacy tokens).
    async fn start(t: &Value, legacy: bool) -> Cloud {
        let endpoint = testkit::dynamo::endpoint();
        testkit::dynamo::fake_aws_environment();
        let recorder = Recorder { service: "dynamodb", log: Arc::default() };
        let dynamo = testkit::dynamo::fresh_client().await;
        let dynamo =
            aws_sdk_dynamodb::Client::from_conf(dynamo.config().to_builder().interceptor(recorder.clone()).build());
        let names = testkit::dynamo::unique_tables();
        let store = DynamoStore::new(dynamo, names.clone());
        store.create_tables().await.expect("tables on the emulator");
        let s3 = accounts::media::s3::client(Some(&testkit::s3::endpoint())).await;
        let bucket = format!("t{}", uuid::Uuid::new_v4().simple());
        s3.create_bucket().bucket(&bucket).send().await.expect("a bucket on the emulator");
        let recorded_s3 =
            aws_sdk_s3::Client::from_conf(s3.config().to_builder().interceptor(recorder.for_service("s3")).build());
        let ses = accounts::mail::ses::client(Some(&endpoint)).await;
        // The sender of the template's defaults, verified as the template's SesIdentity.
        let parameter = |name: &str| {
            t["Parameters"][name]["Default"].as_str().unwrap_or_else(|| panic!("{name} default")).to_string()
        };
        ses.create_email_identity()
            .email_identity(parameter("SesIdentity"))
            .send()
            .await
            .expect("SES identity in moto");
        let ses = aws_sdk_sesv2::Client::from_conf(
            ses.config().to_builder().interceptor(recorder.for_service("ses")).build(),
        );

        // The signing keys' secret, as the deploy guide creates it (a key set, read by name).
        let secrets = accounts::secrets::client(Some(&endpoint)).await;
        let secret_name = format!("accounts/iam/{}", uuid::Uuid::new_v4().simple());
        let key_set = json!({"current": "k1", "keys": {"k1": {"secret": testkit::SECRET}}}).to_string();
        let created =
            secrets.create_secret().name(&secret_name).secret_string(&key_set).send().await.expect("a secret in moto");
        let secret_arn = created.arn.expect("the secret's ARN");
        // The old service's key, as the cutover runbook stores it (a plain SecretString).
        let legacy_secret = if legacy {
            let name = format!("accounts/iam/legacy-{}", uuid::Uuid::new_v4().simple());
            let created = secrets
                .create_secret()
                .name(&name)
                .secret_string(testkit::LEGACY_SECRET)
                .send()
                .await
                .expect("a secret in moto");
            Some((name, created.arn.expect("the secret's ARN")))
        } else {
            None
        };
        let recorded_secrets = aws_sdk_secretsmanager::Client::from_conf(
            secrets.config().to_builder().interceptor(recorder.for_service("secretsmanager")).build(),
        );

        let dir = tempfile::tempdir().unwrap();
        let mut vars = vec![
            (vars::DATA_DIR, dir.path().to_str().unwrap().to_string()),
            (vars::STORAGE, "dynamodb".to_string()),
            (vars::JWT_SECRET_ID, secret_name.clone()),
            (vars::MEDIA_BUCKET, bucket.clone()),
            (vars::MAIL_FROM, parameter("MailFrom")),
            // A reused refresh token ends its session at once (the path that deletes it).
            (vars::REFRESH_REUSE_GRACE, "0".to_string()),
            (vars::PASSWORD_RESET_MIN_RESPONSE_MS, "0".to_string()),
        ];
        if let Some((name, _)) = &legacy_secret {
            vars.push((vars::LEGACY_JWT_SECRET_ID, name.clone()));
            vars.push((vars::LEGACY_TOKENS_UNTIL, "2999-01-01T00:00:00Z".to_string()));
        }
        let mut config = Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
        // What every function does at its cold start (`Config::load_key_set`), with the
        // recorded client: the read is each function's call.
        recorder.take();
        let text = accounts::secrets::read(&recorded_secrets, &secret_name).await.expect("the key set");
        config.apply_key_set(&text).unwrap();
        if let Some((name, _)) = &legacy_secret {
            let text = accounts::secrets::read(&recorded_secrets, name).await.expect("the legacy key");
            config.apply_legacy_secret(&text).unwrap();
        }
        let cold_start = recorder.take();
        let state = AppState::with_media(Arc::new(store), Arc::new(S3Media::new(recorded_s3, bucket.clone())), config)
            .changed(|state| state.mailer = Arc::new(SesMailer::with_client(ses)));

        // The template's table resources, by the variable that names them (`USERS_TABLE: !Ref UsersTable`).
        let env = &t["Resources"]["LoginFunction"]["Properties"]["Environment"]["Variables"];
        let mut tables = BTreeMap::new();
        for (var, name) in [
            (vars::USERS_TABLE, &names.users),
            (vars::SESSIONS_TABLE, &names.sessions),
            (vars::BLACKLIST_TABLE, &names.blacklist),
            (vars::THROTTLE_TABLE, &names.throttle),
        ] {
            let id = env[var]["Ref"].as_str().unwrap_or_else(|| panic!("{var} is not a Ref of a table"));
            tables.insert(id.to_string(), name.clone());
        }
        recorder.take();
        let mut cloud = Cloud {
            state,
            recorder,
            bucket,
            _dir: dir,
            last: Vec::new(),
            tables,
            secret: (secret_name, secret_arn),
            legacy_secret,
            calls: BTreeMap::new(),
        };
        // A static page reads no keys at its start (nor anything else).
        for endpoint in Endpoint::ALL.iter().filter(|e| !e.needs().static_page) {
            cloud.record(*endpoint, &cold_start);
        }
        cloud.record_for(function_logical_id(accounts::http::CATCH_ALL_FUNCTION), &cold_start);
        cloud
    }

    /// One request through the catch-all function's router (the API's `$default` route).
    async fn catch_all(&mut self, method: Method, path: &str, bearer: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = accounts::http::catch_all_router(self.state.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let calls = self.recorder.take();
        self.record_for(function_logical_id(accounts::http::CATCH_ALL_FUNCTION), &calls);
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// One request through `endpoint`'s own router (as its Lambda serves it); the AWS calls it
    /// made are the function's.
    async fn call(
        &mut self,
        endpoint: Endpoint,
        method: Method,
        path: &str,
        body: Option<Body>,
        bearer: Option<&str>,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path).header("host", "api.example.com");
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", content_type);
        }
        let request = request.body(body.unwrap_or_else(Body::empty)).unwrap();
        let response = accounts::http::router(&[endpoint], self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        self.last = self.recorder.take();
        self.record(endpoint, &self.last.clone());
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn json(
        &mut self,
        endpoint: Endpoint,
        method: Method,
        path: &str,
        body: Value,
        bearer: Option<&str>,
    ) -> (StatusCode, Value) {
        self.call(endpoint, method, path, Some(Body::from(body.to_string())), bearer, "application/json").await
    }

    fn record(&mut self, endpoint: Endpoint, calls: &[Call]) {
        self.record_for(function_id(endpoint), calls)
    }

    fn record_for(&mut self, function: String, calls: &[Call]) {
        for call in calls {
            let authorisations = match call.service {
                "ses" => ses_authorisations(call),
                "secretsmanager" => secretsmanager_authorisations(
                    call,
                    &BTreeMap::from_iter([self.secret.clone()].into_iter().chain(self.legacy_secret.clone())),
                ),
                "s3" => s3_authorisations(&call.operation, &call.uri),
                _ => dynamodb_authorisations(call),
            };
            self.calls.entry(function.clone()).or_default().extend(authorisations);
        }
    }

    /// The mails sent so far, from the recorded SES requests' Raw content.
    fn sent_mail(calls: &[Call]) -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.service == "ses")
            .map(|c| {
                let body: Value = serde_json::from_slice(&c.body).unwrap();
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(body["Content"]["Raw"]["Data"].as_str().unwrap())
                    .unwrap();
                testkit::outbox::Letter::parse(&raw).link()
            })
            .collect()
    }
}

/// `LoginFunction` for `login`, as the template names it.
fn function_id(endpoint: Endpoint) -> String {
    function_logical_id(endpoint.function())
}

fn function_logical_id(function: &str) -> String {
    let pascal: String = function.split('-').map(|w| w[..1].to_ascii_uppercase() + &w[1..]).collect();
    format!("{pascal}Function")
}

const BOUNDARY: &str = "----iam-boundary-7MA4YWxkTrZu0gW";

fn png(side: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::DynamicImage::new_rgb8(side, side)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn avatar_multipart(bytes: &[u8]) -> Body {
    let mut body = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"me.png\"\r\nContent-Type: image/png\r\n\r\n").into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    Body::from(body)
}

/// Every endpoint's flows, its success and its refusals that reach AWS, each through its own
/// router; returns the authorisations each function needed.
async fn run_flows(t: &Value, legacy: bool) -> (Cloud, BTreeMap<String, Vec<Authorisation>>) {
    use Endpoint::*;
    let mut cloud = Cloud::start(t, legacy).await;
    let strong = testkit::STRONG;
    let (status, r) = cloud
        .json(
            Registration,
            Method::POST,
            "/api/auth/registration/",
            json!({"username": "iam", "email": "iam@example.org", "password1": strong, "password2": strong}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let access = r["access"].as_str().unwrap().to_string();
    let bearer = Some(access.as_str());
    // Every function authenticates a Bearer before its handler: once with one for each.
    let (status, r) = cloud
        .json(
            Registration,
            Method::POST,
            "/api/auth/registration/",
            json!({"username": "iam2", "password1": strong, "password2": strong}),
            bearer,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    // The user of the old service's tokens (never changes its password here).
    let legacy_user = r["user"]["pk"].as_u64().unwrap();

    let (status, _) = cloud
        .json(Login, Method::POST, "/api/auth/login/", json!({"username": "iam", "password": "wrong"}), bearer)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, r) =
        cloud.json(Login, Method::POST, "/api/auth/login/", json!({"username": "iam", "password": strong}), None).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let refresh = r["refresh"].as_str().unwrap().to_string();

    let (status, _) =
        cloud.json(TokenVerify, Method::POST, "/api/auth/token/verify/", json!({"token": refresh}), bearer).await;
    assert_eq!(status, StatusCode::OK);

    // Rotation; the spent token again while its successor is unused (a lost answer: the current
    // pair); the successor used; then the spent token is reuse: refused, and the session ends.
    for (endpoint, path) in [(Refresh, "/api/auth/refresh/"), (TokenRefresh, "/api/auth/token/refresh/")] {
        let (_, r) = cloud
            .json(Login, Method::POST, "/api/auth/login/", json!({"username": "iam", "password": strong}), None)
            .await;
        let spent = r["refresh"].as_str().unwrap().to_string();
        let (status, r) = cloud.json(endpoint, Method::POST, path, json!({"refresh": spent}), bearer).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let (status, lost) = cloud.json(endpoint, Method::POST, path, json!({"refresh": spent}), None).await;
        assert_eq!((status, &lost["refresh"]), (StatusCode::OK, &r["refresh"]), "{lost}");
        let (status, r) = cloud.json(endpoint, Method::POST, path, json!({"refresh": r["refresh"]}), None).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let (status, r) = cloud.json(endpoint, Method::POST, path, json!({"refresh": spent}), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{r}");
    }

    let (status, r) = cloud.json(Logout, Method::POST, "/api/auth/logout/", json!({"refresh": refresh}), bearer).await;
    assert_eq!(status, StatusCode::OK, "{r}");

    // Sessions: the list; another session ended by its id, an unknown id; then all the others.
    for _ in 0..2 {
        let (status, r) = cloud
            .json(Login, Method::POST, "/api/auth/login/", json!({"username": "iam", "password": strong}), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
    }
    let (status, r) = cloud.call(Sessions, Method::GET, "/api/auth/sessions/", None, bearer, "").await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let other = r.as_array().unwrap().iter().find(|s| s["current"] == false).expect("another session")["id"].clone();
    let path = format!("/api/auth/sessions/{}/", other.as_str().unwrap());
    let (status, r) = cloud.call(Session, Method::DELETE, &path, None, bearer, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{r}");
    let (status, r) = cloud.call(Session, Method::DELETE, &path, None, bearer, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{r}");
    let (status, r) = cloud.call(Sessions, Method::DELETE, "/api/auth/sessions/", None, bearer, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{r}");

    let (status, _) = cloud.call(UserDetails, Method::GET, "/api/auth/user/", None, bearer, "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, r) = cloud
        .json(
            UserDetails,
            Method::PATCH,
            "/api/auth/user/",
            json!({"username": "iam-renamed", "first_name": "I"}),
            bearer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");

    // Two avatars: the second replaces (deletes) the first, and the folder is swept.
    for side in [8, 9] {
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        let (status, r) = cloud
            .call(
                Profile,
                Method::PATCH,
                "/api/accounts/profile/",
                Some(avatar_multipart(&png(side))),
                bearer,
                &content_type,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
    }

    // The direct upload: the client PUTs with the presigned URL, which carries the upload
    // function's authority, so that PUT is the upload function's call.
    let picture = png(16);
    let (status, grant) = cloud
        .json(
            AvatarUpload,
            Method::POST,
            "/api/accounts/profile/avatar/upload/",
            json!({"size": picture.len()}),
            bearer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    let url = grant["upload_url"].as_str().unwrap();
    let mut put = reqwest::Client::new().put(url).body(picture);
    for (name, value) in grant["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    assert!(put.send().await.unwrap().status().is_success());
    cloud.calls.entry(function_id(AvatarUpload)).or_default().extend(s3_authorisations("PutObject", url));
    let (status, r) = cloud
        .json(
            AvatarConfirm,
            Method::POST,
            "/api/accounts/profile/avatar/confirm/",
            json!({"upload_id": grant["upload_id"]}),
            bearer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");

    // Two sessions the password change ends (its DeleteItem), whose refresh tokens then fail
    // without being spent: the refresh functions read the user to say why.
    let mut ended = Vec::new();
    for _ in 0..2 {
        let (_, r) = cloud
            .json(Login, Method::POST, "/api/auth/login/", json!({"username": "iam-renamed", "password": strong}), None)
            .await;
        ended.push(r["refresh"].as_str().unwrap().to_string());
    }
    let (status, _) = cloud
        .json(PasswordChange, Method::POST, "/api/auth/password/change/", json!({"old_password": "wrong", "new_password1": "Harbor-Lantern-58", "new_password2": "Harbor-Lantern-58"}), bearer)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, r) = cloud
        .json(
            PasswordChange,
            Method::POST,
            "/api/auth/password/change/",
            json!({"old_password": strong, "new_password1": "Harbor-Lantern-58", "new_password2": "Harbor-Lantern-58"}),
            bearer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");

    for ((endpoint, path), token) in
        [(Refresh, "/api/auth/refresh/"), (TokenRefresh, "/api/auth/token/refresh/")].into_iter().zip(&ended)
    {
        let (status, r) = cloud.json(endpoint, Method::POST, path, json!({"refresh": token}), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{r}");
    }

    // The reset mail goes through SES; its link feeds the confirmation.
    let (status, r) = cloud
        .json(PasswordReset, Method::POST, "/api/auth/password/reset/", json!({"email": "iam@example.org"}), bearer)
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let links = Cloud::sent_mail(&cloud.last);
    let [link] = links.as_slice() else { panic!("one reset mail: {links:?}") };
    let parts: Vec<&str> = link.trim_end_matches('/').rsplit('/').take(2).collect();
    let (uid, token) = (parts[1], parts[0]);
    let (status, r) = cloud
        .json(PasswordResetConfirm, Method::POST, "/api/auth/password/reset/confirm/", json!({"uid": uid, "token": token, "new_password1": "Quartz-Meadow-91", "new_password2": "Quartz-Meadow-91"}), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let (_, r) = cloud
        .json(
            Login,
            Method::POST,
            "/api/auth/login/",
            json!({"username": "iam-renamed", "password": "Quartz-Meadow-91"}),
            None,
        )
        .await;
    let fresh = r["access"].as_str().expect("login after the reset").to_string();
    let (status, _) = cloud
        .json(
            PasswordResetConfirm,
            Method::POST,
            "/api/auth/password/reset/confirm/",
            json!({"uid": uid, "token": token}),
            Some(&fresh),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for (endpoint, path) in [
        (PasswordResetLink, "/password-reset/confirm/1/abc-123/"),
        (Jwks, "/.well-known/jwks.json"),
        (Schema, "/api/schema/"),
    ] {
        let (status, _) = cloud.call(endpoint, Method::GET, path, None, Some(&fresh), "").await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    if legacy {
        legacy_flows(&mut cloud, legacy_user).await;
    }
    // The catch-all route: an unknown path, a method a path does not answer (authenticated first).
    let (status, r) = cloud.catch_all(Method::GET, "/api/nothing/", Some(&fresh)).await;
    assert_eq!((status, r), (StatusCode::NOT_FOUND, json!({"detail": "Not found."})));
    let (status, r) = cloud.catch_all(Method::DELETE, "/api/accounts/profile/", Some(&fresh)).await;
    assert_eq!((status, r), (StatusCode::METHOD_NOT_ALLOWED, json!({"detail": "Method \"DELETE\" not allowed."})));

    // The deletion page: HTML from the binary, no AWS call.
    let (status, _) = cloud.call(AccountDeletePage, Method::GET, "/account/delete/", None, None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(cloud.last.is_empty(), "the page called AWS: {:?}", cloud.last);
    // Account deletion: a wrong password (the throttle), a deletion that finds the user changed
    // since it was read (renamed: read again), and the caller's own, with its avatar objects.
    let (status, r) = cloud
        .json(AccountDeletion, Method::DELETE, "/api/auth/user/", json!({"password": "wrong"}), Some(&fresh))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{r}");
    let (status, r) = cloud
        .json(
            Registration,
            Method::POST,
            "/api/auth/registration/",
            json!({"username": "iam3", "email": "iam3@example.org", "password1": strong, "password2": strong}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let store = cloud.state.store.clone();
    let read = store.find_user_by_username("iam3").await.unwrap().expect("iam3");
    let rename = accounts::domain::model::UserUpdate { username: Some("iam3-renamed".into()), ..Default::default() };
    store.update_user(read.id, rename).await.unwrap();
    cloud.recorder.take();
    let outcome = accounts::domain::account::delete_account(&*store, &*cloud.state.media, &read).await.unwrap();
    assert_eq!(outcome, accounts::domain::account::Deletion::Deleted);
    let calls = cloud.recorder.take();
    cloud.record(AccountDeletion, &calls);
    // A direct upload never confirmed: the deletion removes it too.
    let (status, grant) = cloud
        .json(AvatarUpload, Method::POST, "/api/accounts/profile/avatar/upload/", json!({"size": 3}), Some(&fresh))
        .await;
    assert_eq!(status, StatusCode::OK, "{grant}");
    let url = grant["upload_url"].as_str().unwrap();
    let mut put = reqwest::Client::new().put(url).body(vec![1u8, 2, 3]);
    for (name, value) in grant["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    assert!(put.send().await.unwrap().status().is_success());
    cloud.calls.entry(function_id(AvatarUpload)).or_default().extend(s3_authorisations("PutObject", url));
    let (status, r) = cloud
        .json(AccountDeletion, Method::DELETE, "/api/auth/user/", json!({"password": "Quartz-Meadow-91"}), Some(&fresh))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{r}");
    assert!(
        cloud.last.iter().any(|c| c.operation == "DeleteObject") && cloud.last.iter().any(|c| c.operation == "Query"),
        "the deletion deletes avatar objects and looks up sessions: {:?}",
        cloud.last.iter().map(|c| &c.operation).collect::<Vec<_>>()
    );
    let calls = std::mem::take(&mut cloud.calls);
    (cloud, calls)
}

/// The old service's tokens during a cutover: an access token on every function (each
/// authenticates it: its user with its blacklist entry), a refresh token exchanged at both refresh
/// functions and then reused, logged out twice, verified.
async fn legacy_flows(cloud: &mut Cloud, user_id: u64) {
    use Endpoint::*;
    let (access, _) = testkit::legacy_token("access", user_id, 300);
    for endpoint in Endpoint::ALL {
        let path = endpoint.path().replace("{uid}", "1").replace("{token}", "abc-123");
        let method = endpoint.methods()[0].clone();
        let (status, r) = cloud.call(*endpoint, method, &path, None, Some(&access), "").await;
        // Authenticated (its handler may still refuse the empty request).
        assert_ne!(r["detail"], "Given token not valid for any token type", "{path}: {status} {r}");
    }
    let (status, _) = cloud.catch_all(Method::DELETE, "/api/accounts/profile/", Some(&access)).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    for (endpoint, path) in [(Refresh, "/api/auth/refresh/"), (TokenRefresh, "/api/auth/token/refresh/")] {
        let (refresh, _) = testkit::legacy_token("refresh", user_id, 3600);
        let (status, r) = cloud.json(endpoint, Method::POST, path, json!({"refresh": refresh}), None).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        let (status, r) = cloud.json(endpoint, Method::POST, path, json!({"refresh": refresh}), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{r}");
    }
    let (refresh, _) = testkit::legacy_token("refresh", user_id, 3600);
    let (status, _) =
        cloud.json(TokenVerify, Method::POST, "/api/auth/token/verify/", json!({"token": refresh}), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cloud.json(Logout, Method::POST, "/api/auth/logout/", json!({"refresh": refresh}), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = cloud.json(Logout, Method::POST, "/api/auth/logout/", json!({"refresh": refresh}), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// With a cutover's legacy tokens configured (`LegacyJwtSecretId` set): the conditional grants
/// are there and used, and nothing else changes.
#[tokio::test]
async fn with_legacy_tokens_every_function_is_allowed_what_it_calls_and_granted_nothing_more() {
    let t = expanded_template();
    let (cloud, calls) = run_flows(&t, true).await;
    let mut names = Names::new(&t, &cloud.tables, &cloud.bucket);
    names.refs.insert("JwtSecretId".into(), cloud.secret.0.clone());
    names.refs.insert("LegacyJwtSecretId".into(), cloud.legacy_secret.clone().unwrap().0);
    let found = problems(&policies(&t, &names), &calls);
    assert!(found.is_empty(), "IAM (legacy tokens) vs the calls of the flows:\n  {}", found.join("\n  "));
    // Without the conditional grant the exchange of a legacy refresh token is denied.
    names.refs.insert("LegacyJwtSecretId".into(), String::new());
    let found = problems(&policies(&t, &names), &calls);
    assert!(
        found.iter().any(|p| p.starts_with(
            "RefreshFunction is denied dynamodb:PutItem on arn:aws:dynamodb:us-east-1:123456789012:table/t"
        )),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p.starts_with("ProfileFunction is denied secretsmanager:GetSecretValue")),
        "{found:?}"
    );
}

#[tokio::test]
async fn every_function_is_allowed_what_it_calls_and_granted_nothing_more() {
    let t = expanded_template();
    let (cloud, calls) = run_flows(&t, false).await;
    let callers = Endpoint::ALL.iter().filter(|e| !e.needs().static_page).map(|e| e.function());
    for function in callers.chain([accounts::http::CATCH_ALL_FUNCTION]) {
        assert!(calls.contains_key(&function_logical_id(function)), "no call of {function} was recorded");
    }
    let mut names = Names::new(&t, &cloud.tables, &cloud.bucket);
    names.refs.insert("JwtSecretId".into(), cloud.secret.0.clone());
    let deployed = policies(&t, &names);
    assert_eq!(
        deployed.len(),
        Endpoint::ALL.len() + 1,
        "one function per endpoint and the catch-all in the expanded template"
    );
    let found = problems(&deployed, &calls);
    assert!(found.is_empty(), "IAM of the expanded template vs the calls of the flows:\n  {}", found.join("\n  "));

    // The check notices a missing or a broader grant: the same calls against altered copies.
    let statements = |t: &mut Value, function: &str| -> Vec<Value> {
        t["Resources"][format!("{function}Role")]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap()
            .clone()
    };
    let set = |t: &mut Value, function: &str, list: Vec<Value>| {
        t["Resources"][format!("{function}Role")]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] =
            Value::Array(list);
    };
    for (function, sid, expected) in [
        // The finding of issue 12: without it, password reset answers 500 in AWS.
        (
            "PasswordResetFunction",
            "Throttle",
            "PasswordResetFunction is denied dynamodb:UpdateItem on arn:aws:dynamodb:us-east-1:123456789012:table/t",
        ),
        ("PasswordResetFunction", "SendMail", "PasswordResetFunction is denied ses:SendRawEmail"),
        ("PasswordResetConfirmFunction", "SessionsByUser", "PasswordResetConfirmFunction is denied dynamodb:Query on"),
        ("RefreshFunction", "Blacklist", "RefreshFunction is denied dynamodb:PutItem"),
        ("AvatarConfirmFunction", "Uploads", "AvatarConfirmFunction is denied s3:GetObject"),
        ("ProfileFunction", "ListAvatars", "ProfileFunction is denied s3:ListBucket"),
        ("AccountDeletionFunction", "ListMedia", "AccountDeletionFunction is denied s3:ListBucket"),
        ("AccountDeletionFunction", "Users", "AccountDeletionFunction is denied dynamodb:DeleteItem"),
        ("LoginFunction", "SigningKeys", "LoginFunction is denied secretsmanager:GetSecretValue"),
    ] {
        let mut broken = t.clone();
        let kept = statements(&mut broken, function).into_iter().filter(|s| s["Sid"] != sid).collect();
        set(&mut broken, function, kept);
        let found = problems(&policies(&broken, &names), &calls);
        assert!(found.iter().any(|p| p.starts_with(expected)), "without {function}.{sid}: {found:?}");
    }
    let identity =
        json!({"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SesIdentity}"});
    for (function, extra, expected) in [
        (
            "ProfileFunction",
            json!({"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": {"Fn::GetAtt": ["UsersTable", "Arn"]}}),
            "ProfileFunction grants dynamodb:Scan",
        ),
        (
            "ProfileFunction",
            json!({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": {"Fn::GetAtt": ["BlacklistTable", "Arn"]}}),
            "ProfileFunction grants dynamodb:GetItem on arn:aws:dynamodb:us-east-1:123456789012:table/t",
        ),
        (
            "PasswordChangeFunction",
            json!({"Effect": "Allow", "Action": "dynamodb:Query", "Resource": {"Fn::GetAtt": ["SessionsTable", "Arn"]}}),
            "PasswordChangeFunction grants dynamodb:Query",
        ),
        (
            "LoginFunction",
            json!({"Effect": "Allow", "Action": "ses:SendRawEmail", "Resource": identity}),
            "LoginFunction grants ses:SendRawEmail",
        ),
        (
            "AvatarUploadFunction",
            json!({"Effect": "Allow", "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${MediaBucket.Arn}/avatar/*"}}),
            "AvatarUploadFunction grants s3:PutObject on arn:aws:s3:::",
        ),
    ] {
        let mut broader = t.clone();
        let mut list = statements(&mut broader, function);
        list.push(extra.clone());
        set(&mut broader, function, list);
        let found = problems(&policies(&broader, &names), &calls);
        assert!(found.iter().any(|p| p.starts_with(expected)), "{function} + {extra}: {found:?}");
    }
}
