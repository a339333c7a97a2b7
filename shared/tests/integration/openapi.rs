//! The OpenAPI document against the route table and the router: every route is described, nothing
//! else is, every operation gives the answers every operation can give, and what the router really
//! answers is among the documented statuses.

use std::collections::BTreeSet;

use accounts::http::openapi::{self, BEARER, BODY_CONTENT_TYPES};
use accounts::http::Endpoint;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use testkit::TestApp;

fn document() -> Value {
    serde_json::to_value(openapi::document()).unwrap()
}

/// (path, method, operation) of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        // `x-` keys are extensions (the path's aliases), not methods.
        for (method, operation) in item.as_object().unwrap().iter().filter(|(key, _)| !key.starts_with("x-")) {
            all.push((path.clone(), method.to_ascii_uppercase(), operation.clone()));
        }
    }
    all
}

/// The endpoints of the API: web pages (HTML for people) are not in the document.
fn api_endpoints() -> impl Iterator<Item = &'static Endpoint> {
    Endpoint::ALL.iter().filter(|e| !e.needs().static_page)
}

fn routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for endpoint in api_endpoints() {
        for path in endpoint.paths() {
            for method in endpoint.methods() {
                routes.insert((path.to_string(), method.to_string()));
            }
        }
    }
    routes
}

fn statuses(operation: &Value) -> BTreeSet<u16> {
    operation["responses"].as_object().unwrap().keys().map(|k| k.parse().unwrap()).collect()
}

/// (path, method) of every operation, and of every alias of its path (`x-aliases`).
fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    let mut documented = BTreeSet::new();
    for (path, method, _) in operations(doc) {
        let aliases = doc["paths"][&path][openapi::ALIASES].as_array().cloned().unwrap_or_default();
        for spelling in std::iter::once(path.clone()).chain(aliases.iter().map(|a| a.as_str().unwrap().to_string())) {
            documented.insert((spelling, method.clone()));
        }
    }
    documented
}

#[test]
fn every_route_is_documented_and_nothing_else() {
    let doc = document();
    let documented = documented_routes(&doc);
    let routes = routes();
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(missing.is_empty(), "routes without an operation in the document: {missing:?}");
    assert!(extra.is_empty(), "operations the router does not have: {extra:?}");
    // Both spellings of a path are there (with and without the trailing slash)...
    assert!(documented.contains(&("/api/auth/login".into(), "POST".into())));
    assert!(documented.contains(&("/password-reset/confirm/{uid}/{token}".into(), "GET".into())));
    // ...but one operation per route: a generated client gets one method, not a twin per spelling.
    let per_route: usize = api_endpoints().map(|e| e.methods().len()).sum();
    assert_eq!(operations(&doc).len(), per_route);
    // Two endpoints on one path (user details and account deletion) are one path item.
    assert!(
        doc["paths"]["/api/auth/user/"]["get"].is_object() && doc["paths"]["/api/auth/user/"]["delete"].is_object()
    );
    assert!(doc["paths"].get("/account/delete/").is_none(), "a web page is no operation of the API");
    assert!(doc["paths"].get("/api/auth/login").is_none());
}

/// Fails when an endpoint or a method is added to the route table without a description.
#[test]
fn every_endpoint_and_method_is_described() {
    for endpoint in api_endpoints() {
        for method in endpoint.methods() {
            let description = openapi::describe(*endpoint, method)
                .unwrap_or_else(|| panic!("{endpoint:?} {method} is not described in shared/src/http/openapi.rs"));
            assert!(!description.summary.is_empty());
            assert!((200..300).contains(&description.ok.0), "{endpoint:?} {method}");
        }
        // And nothing is described that the router does not answer.
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            if !endpoint.methods().contains(&method) {
                assert!(
                    openapi::describe(*endpoint, &method).is_none(),
                    "{endpoint:?} {method} is described but not routed"
                );
            }
        }
    }
    let doc = document();
    let ids: Vec<String> =
        operations(&doc).iter().map(|(_, _, op)| op["operationId"].as_str().unwrap().to_string()).collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "operation ids are unique");
    for (path, method, op) in operations(&doc) {
        assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{method} {path}");
        let ok: Vec<u16> = statuses(&op).into_iter().filter(|s| (200..300).contains(s)).collect();
        assert_eq!(ok.len(), 1, "{method} {path}: one success answer");
        let response = &op["responses"][ok[0].to_string()];
        if ok[0] == 204 {
            assert!(response.get("content").is_none(), "{method} {path}: a 204 has no body");
        } else {
            let content = &response["content"]["application/json"]["schema"];
            assert!(content.is_object(), "{method} {path}: the success body has a schema");
        }
    }
}

#[test]
fn every_operation_documents_the_answers_every_operation_can_give() {
    for (path, method, op) in operations(&document()) {
        let statuses = statuses(&op);
        // A bad Bearer header is refused on every route; a sent token is looked up in storage.
        assert!(statuses.contains(&401) && statuses.contains(&503), "{method} {path}: {statuses:?}");
        if op.get("requestBody").is_some() {
            for status in [400, 413, 415] {
                assert!(statuses.contains(&status), "{method} {path} reads a body but does not document {status}");
            }
            let content = op["requestBody"]["content"].as_object().unwrap();
            for content_type in BODY_CONTENT_TYPES {
                assert!(content.contains_key(content_type), "{method} {path}: {content_type}");
            }
        }
    }
}

/// The status codes docs/api.md lists per endpoint (and the 429s of docs/api.md#decision-5) are all documented.
#[test]
fn the_contracts_statuses_are_documented() {
    let expected: &[(&str, &str, &[u16])] = &[
        ("/api/auth/registration/", "POST", &[201, 400, 429]),
        ("/api/auth/login/", "POST", &[200, 400, 429]),
        ("/api/auth/refresh/", "POST", &[200, 400, 401]),
        ("/api/auth/token/refresh/", "POST", &[200, 401]),
        ("/api/auth/token/verify/", "POST", &[200, 400, 401]),
        ("/api/auth/logout/", "POST", &[200, 401]),
        ("/api/auth/user/", "GET", &[200, 401]),
        ("/api/auth/user/", "PATCH", &[200, 400, 401]),
        ("/api/auth/user/", "PUT", &[200, 400, 401]),
        ("/api/auth/password/change/", "POST", &[200, 400, 401]),
        ("/api/auth/password/reset/", "POST", &[200, 400, 429]),
        ("/api/auth/password/reset/confirm/", "POST", &[200, 400]),
        ("/api/accounts/profile/", "GET", &[200, 401]),
        ("/api/accounts/profile/", "PATCH", &[200, 400, 401]),
        ("/api/accounts/profile/", "PUT", &[200, 400, 401]),
        ("/password-reset/confirm/{uid}/{token}/", "GET", &[200, 404]),
        ("/api/auth/user/", "DELETE", &[204, 400, 401, 429]),
    ];
    let doc = document();
    for (path, method, wanted) in expected {
        let op = &doc["paths"][*path][method.to_ascii_lowercase()];
        let documented = statuses(op);
        for status in *wanted {
            assert!(documented.contains(status), "{method} {path} does not document {status}: {documented:?}");
        }
    }
}

#[test]
fn protected_operations_need_the_bearer_scheme_and_others_take_it_optionally() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
    for endpoint in api_endpoints() {
        let path = endpoint.path();
        for method in endpoint.methods() {
            let security = &doc["paths"][path][method.as_str().to_ascii_lowercase()]["security"];
            let expected = if endpoint.requires_auth() {
                serde_json::json!([{BEARER: []}])
            } else {
                serde_json::json!([{}, {BEARER: []}])
            };
            assert_eq!(security, &expected, "{method} {path}");
        }
    }
}

#[test]
fn every_reference_resolves() {
    fn walk(value: &Value, doc: &Value, seen: &mut usize) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    let pointer = reference.strip_prefix('#').expect("local reference");
                    assert!(doc.pointer(pointer).is_some(), "dangling {reference}");
                    *seen += 1;
                }
                map.values().for_each(|v| walk(v, doc, seen));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, doc, seen)),
            _ => {}
        }
    }
    let doc = document();
    let mut seen = 0;
    walk(&doc, &doc, &mut seen);
    assert!(seen > 100, "the document uses its components ({seen} references)");
}

/// Sends each documented operation to the real router (anonymously, without a body, then with
/// a body of another content type) and checks the answer is one the document lists.
#[tokio::test]
async fn the_router_answers_every_documented_operation_with_a_documented_status() {
    let app = TestApp::new();
    let doc = document();
    for (path, method, op) in operations(&doc) {
        let aliases = doc["paths"][&path][openapi::ALIASES].as_array().cloned().unwrap_or_default();
        for spelling in std::iter::once(path.as_str()).chain(aliases.iter().filter_map(Value::as_str)) {
            let uri = spelling.replace("{uid}", "1z").replace("{token}", "abc-123").replace("{id}", "0123456789abcdef");
            let documented = statuses(&op);
            let mut requests = vec![Request::builder().method(method.as_str()).uri(&uri).body(Body::empty()).unwrap()];
            if op.get("requestBody").is_some() {
                requests.push(
                    Request::builder()
                        .method(method.as_str())
                        .uri(&uri)
                        .header("content-type", "text/plain")
                        .body(Body::from("hello"))
                        .unwrap(),
                );
            }
            for request in requests {
                let with_body = request.headers().contains_key("content-type");
                let reply = app.send(request).await;
                assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert!(
                    documented.contains(&reply.status.as_u16()),
                    "{method} {uri} (body: {with_body}) answered {} {}, not among {documented:?}",
                    reply.status,
                    reply.body
                );
                assert_documented(&doc, &path, &method, &reply, &Value::Null);
            }
        }
    }
}

#[tokio::test]
async fn the_document_is_served_at_its_endpoint() {
    let app = TestApp::new();
    for path in Endpoint::Schema.paths() {
        let reply = app.call("GET", path, None, None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, document());
    }
}

// ---- The document against what the code accepts and answers (drift) ----------------------------
//
// The probes below ask the router, not the field tables: what it reads, requires, bounds and
// answers is compared with what the document says, so a document generated from wrong tables
// fails too.

/// Resolves a local `$ref` (schemas and responses).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => resolve(doc, doc.pointer(reference.strip_prefix('#').unwrap()).expect("dangling $ref")),
        None => value,
    }
}

/// Whether `value` fits `schema`: the JSON Schema keywords the document uses (types, properties,
/// required, additionalProperties, items, anyOf, minimum, maxLength, minLength, min counts).
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(any_of) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Value::as_array) {
        let problems: Vec<String> = any_of.iter().filter_map(|s| conforms(doc, s, value, at).err()).collect();
        return if problems.len() < any_of.len() { Ok(()) } else { Err(problems.join(" / ")) };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if !types.is_empty() && !types.contains(&actual) && (actual != "integer" || !types.contains(&"number")) {
        return Err(format!("{at}: {actual} where the document says {types:?}"));
    }
    if let (Some(minimum), Some(n)) = (schema["minimum"].as_f64(), value.as_f64()) {
        if n < minimum {
            return Err(format!("{at}: {n} is below the documented minimum {minimum}"));
        }
    }
    if let Value::String(s) = value {
        let chars = s.chars().count() as u64;
        if schema["maxLength"].as_u64().is_some_and(|max| chars > max)
            || schema["minLength"].as_u64().is_some_and(|min| chars < min)
        {
            return Err(format!("{at}: {s:?} is outside the documented length"));
        }
    }
    if let Value::Array(items) = value {
        if schema["minItems"].as_u64().is_some_and(|min| (items.len() as u64) < min) {
            return Err(format!("{at}: fewer items than documented"));
        }
        if let Some(item) = schema.get("items") {
            for (i, v) in items.iter().enumerate() {
                conforms(doc, item, v, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Value::Object(map) = value {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !map.contains_key(required) {
                return Err(format!("{at}: the documented key {required:?} is missing"));
            }
        }
        if schema["minProperties"].as_u64().is_some_and(|min| (map.len() as u64) < min) {
            return Err(format!("{at}: fewer keys than documented"));
        }
        for (key, v) in map {
            let at = format!("{at}.{key}");
            match (properties.and_then(|p| p.get(key)), schema.get("additionalProperties")) {
                (Some(property), _) => conforms(doc, property, v, &at)?,
                (None, Some(Value::Bool(false))) => return Err(format!("{at}: a key the document does not list")),
                (None, Some(extra @ Value::Object(_))) => conforms(doc, extra, v, &at)?,
                (None, _) => {}
            }
        }
    }
    Ok(())
}

/// The documented body schema of `status` for an operation, if the status is documented.
fn response_schema<'a>(doc: &'a Value, op: &'a Value, status: StatusCode) -> Option<&'a Value> {
    let response = resolve(doc, op["responses"].get(status.as_str())?);
    Some(&response["content"]["application/json"]["schema"])
}

/// The answer is a documented status and its body fits that status's schema.
fn assert_documented(doc: &Value, path: &str, method: &str, reply: &testkit::Reply, sent: &Value) {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    let Some(schema) = response_schema(doc, op, reply.status) else {
        panic!("{method} {path} with {sent} answered {}, which is not documented: {}", reply.status, reply.body)
    };
    if reply.status == StatusCode::NO_CONTENT {
        assert_eq!((schema, &reply.body), (&Value::Null, &Value::Null), "{method} {path}: no body, none documented");
        return;
    }
    if let Err(problem) = conforms(doc, schema, &reply.body, "body") {
        panic!("{method} {path} with {sent} answered {} {}, not as documented: {problem}", reply.status, reply.body);
    }
}

/// The messages of field `name` in a 400 field-error answer.
fn messages(reply: &testkit::Reply, name: &str) -> Vec<String> {
    if reply.status != StatusCode::BAD_REQUEST {
        return Vec::new();
    }
    reply.body[name].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect()
}

const NO_MORE_THAN: &str = "Ensure this field has no more than";

/// For every operation that reads a body: each documented field is read by the code, the fields
/// the code requires are the documented required ones, and every documented bound (length,
/// blank, minimum) is the code's, and no undocumented one exists.
#[tokio::test]
async fn the_documented_request_fields_are_the_ones_the_code_reads() {
    let app = TestApp::with_env(&[
        ("THROTTLE_LOGIN_ACCOUNT", "0/60"),
        ("THROTTLE_LOGIN_IP", "0/60"),
        ("THROTTLE_REGISTRATION_IP", "0/60"),
        ("THROTTLE_RESET_IP", "0/60"),
        ("THROTTLE_RESET_ADDRESS", "0/60"),
        ("PASSWORD_RESET_MIN_RESPONSE_MS", "0"),
    ]);
    let (access, _, _) = app.register("prober").await;
    let doc = document();
    let mut drift = Vec::new();
    for endpoint in Endpoint::ALL {
        let path = endpoint.path();
        for method in endpoint.methods() {
            let op = &doc["paths"][path][method.as_str().to_ascii_lowercase()];
            let Some(body) = op.get("requestBody") else { continue };
            let schema = resolve(&doc, &body["content"]["application/json"]["schema"]);
            let send = |data: Value| {
                let (app, access, doc) = (&app, &access, &doc);
                async move {
                    let reply = app.call(method.as_str(), path, Some(data.clone()), Some(access)).await;
                    assert_documented(doc, path, method.as_str(), &reply, &data);
                    reply
                }
            };
            let empty = send(serde_json::json!({})).await;
            let documented_required: BTreeSet<&str> =
                schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let properties = schema["properties"].as_object().cloned().unwrap_or_default();
            if empty.status == StatusCode::BAD_REQUEST {
                let required: BTreeSet<&str> = empty
                    .body
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(_, m)| m.as_array().is_some_and(|m| m.iter().any(|m| m == "This field is required.")))
                    .map(|(name, _)| name.as_str())
                    .collect();
                if required != documented_required {
                    drift.push(format!(
                        "{method} {path}: the code requires {required:?}, the document {documented_required:?}"
                    ));
                }
            } else if empty.status.is_success() && !documented_required.is_empty() {
                drift.push(format!("{method} {path}: accepts {{}} but documents required {documented_required:?}"));
            }
            for (name, property) in &properties {
                let property = resolve(&doc, property);
                // A value no field takes (an array): a field the code reads refuses it or
                // changes the answer.
                let odd = send(serde_json::json!({ name: [1] })).await;
                if odd.status == empty.status && odd.body == empty.body && messages(&odd, name).is_empty() {
                    drift.push(format!("{method} {path}: documents {name:?}, which the code never reads"));
                }
                match property["type"].as_str() {
                    Some("string") => {
                        let long = |n: usize| send(serde_json::json!({ name: "a".repeat(n) }));
                        match property["maxLength"].as_u64() {
                            Some(max) => {
                                let over = long(max as usize + 1).await;
                                if !messages(&over, name).iter().any(|m| m.starts_with(NO_MORE_THAN)) {
                                    drift.push(format!(
                                        "{method} {path}: {name:?} documents maxLength {max}, the code takes more"
                                    ));
                                }
                                let at = long(max as usize).await;
                                if messages(&at, name).iter().any(|m| m.starts_with(NO_MORE_THAN)) {
                                    drift.push(format!(
                                        "{method} {path}: {name:?} documents maxLength {max}, the code takes less"
                                    ));
                                }
                            }
                            None => {
                                let huge = long(1000).await;
                                if let Some(m) = messages(&huge, name).into_iter().find(|m| m.starts_with(NO_MORE_THAN))
                                {
                                    drift.push(format!(
                                        "{method} {path}: {name:?} is unbounded in the document, the code says {m:?}"
                                    ));
                                }
                            }
                        }
                        let blank_refused = messages(&send(serde_json::json!({ name: "  " })).await, name)
                            .contains(&"This field may not be blank.".to_string());
                        let documented = property["minLength"].as_u64().unwrap_or(0) >= 1;
                        if blank_refused != documented {
                            drift.push(format!(
                                "{method} {path}: {name:?} blank: the code refuses it: {blank_refused}, the document: {documented}"
                            ));
                        }
                    }
                    Some("integer") => {
                        let minimum = property["minimum"].as_i64().unwrap_or(i64::MIN);
                        let below = send(serde_json::json!({ name: minimum.saturating_sub(1).max(-1) })).await;
                        if minimum > -1 && messages(&below, name).is_empty() {
                            drift.push(format!(
                                "{method} {path}: {name:?} documents minimum {minimum}, the code takes less"
                            ));
                        }
                        if minimum > i64::MIN
                            && !messages(&send(serde_json::json!({ name: minimum })).await, name).is_empty()
                        {
                            drift.push(format!(
                                "{method} {path}: {name:?} documents minimum {minimum}, the code refuses it"
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(drift.is_empty(), "the document and the code disagree:\n{}", drift.join("\n"));
}

/// A successful call of every operation: its body fits the documented success schema (exact
/// keys and their types).
#[tokio::test]
async fn every_success_body_is_as_documented() {
    let app = TestApp::with_env(&[("PASSWORD_RESET_MIN_RESPONSE_MS", "0")]);
    let doc = document();
    let strong = testkit::STRONG;
    let registration = serde_json::json!({"username": "shape", "email": "shape@example.com", "password1": strong, "password2": strong});
    let registered = app.post("/api/auth/registration/", registration.clone()).await;
    assert_documented(&doc, "/api/auth/registration/", "POST", &registered, &registration);
    let login = serde_json::json!({"username": "shape", "password": strong});
    let logged_in = app.post("/api/auth/login/", login.clone()).await;
    assert_documented(&doc, "/api/auth/login/", "POST", &logged_in, &login);
    let access = logged_in.body["access"].as_str().unwrap().to_string();
    let mut refresh = logged_in.body["refresh"].as_str().unwrap().to_string();
    let mut checked = BTreeSet::new();
    let new_password = "zq81@wVn!t-new";
    let registered_sid =
        testkit::claims(registered.body["access"].as_str().unwrap())["sid"].as_str().unwrap().to_string();
    let other_session = format!("/api/auth/sessions/{registered_sid}/");
    let calls: Vec<(&str, &str, Option<Value>)> = vec![
        ("POST", "/api/auth/refresh/", None),
        ("POST", "/api/auth/token/refresh/", None),
        ("POST", "/api/auth/token/verify/", Some(serde_json::json!({"token": access}))),
        ("GET", "/api/auth/user/", None),
        ("PUT", "/api/auth/user/", Some(serde_json::json!({"username": "shape", "first_name": "S"}))),
        ("PATCH", "/api/auth/user/", Some(serde_json::json!({"last_name": "H"}))),
        ("GET", "/api/accounts/profile/", None),
        ("PUT", "/api/accounts/profile/", Some(serde_json::json!({"nickname": "n"}))),
        ("PATCH", "/api/accounts/profile/", Some(serde_json::json!({"signature": "s", "avatar": null}))),
        ("POST", "/api/accounts/profile/avatar/upload/", Some(serde_json::json!({"size": 10}))),
        ("GET", "/api/auth/sessions/", None),
        ("DELETE", other_session.as_str(), None),
        ("DELETE", "/api/auth/sessions/", None),
        (
            "POST",
            "/api/auth/password/change/",
            Some(
                serde_json::json!({"old_password": strong, "new_password1": new_password, "new_password2": new_password}),
            ),
        ),
        ("POST", "/api/auth/password/reset/", Some(serde_json::json!({"email": "shape@example.com"}))),
        ("GET", "/password-reset/confirm/1z/abc-123/", None),
        ("GET", "/.well-known/jwks.json", None),
        ("GET", "/api/schema/", None),
        ("POST", "/api/auth/logout/", None),
    ];
    for (method, uri, body) in calls {
        // The refresh routes and logout take the current refresh token.
        let body = body.or_else(|| (method == "POST").then(|| serde_json::json!({"refresh": refresh})));
        let reply = app.call(method, uri, body.clone(), Some(&access)).await;
        assert!(reply.status.is_success(), "{method} {uri}: {} {}", reply.status, reply.body);
        if let Some(next) = reply.body["refresh"].as_str() {
            refresh = next.to_string();
        }
        let path = if uri.starts_with("/password-reset/confirm/") {
            "/password-reset/confirm/{uid}/{token}/"
        } else if uri == other_session {
            "/api/auth/sessions/{id}/"
        } else {
            uri
        };
        assert_documented(&doc, path, method, &reply, body.as_ref().unwrap_or(&Value::Null));
        checked.insert((path.to_string(), method.to_string()));
    }
    // Last, on a session of its own: the account goes.
    let logged_in =
        app.post("/api/auth/login/", serde_json::json!({"username": "shape", "password": new_password})).await;
    let access = logged_in.body["access"].as_str().unwrap().to_string();
    let body = serde_json::json!({"password": new_password});
    let reply = app.call("DELETE", "/api/auth/user/", Some(body.clone()), Some(&access)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_documented(&doc, "/api/auth/user/", "DELETE", &reply, &body);
    checked.insert(("/api/auth/user/".to_string(), "DELETE".to_string()));
    // The remaining two answer a profile and a message, checked above on other operations.
    assert_eq!(checked.len() + 4, api_endpoints().map(|e| e.methods().len()).sum::<usize>());
}
