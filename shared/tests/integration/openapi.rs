//! The OpenAPI document against the route table and the router: every route is described, nothing
//! else is, every operation gives the answers every operation can give, and what the router really
//! answers is among the documented statuses.


use std::collections::BTreeSet;

use accounts::http::openapi::{self, BODY_CONTENT_TYPES, BEARER};
use accounts::http::routes::Endpoint;
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
        for (method, operation) in item.as_object().unwrap() {
            all.push((path.clone(), method.to_ascii_uppercase(), operation.clone()));
        }
    }
    all
}

fn routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for endpoint in Endpoint::ALL {
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

#[test]
fn every_route_is_documented_and_nothing_else() {
    let documented: BTreeSet<(String, String)> = operations(&document()).into_iter().map(|(p, m, _)| (p, m)).collect();
    let routes = routes();
    let missing: Vec<_> = routes.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(missing.is_empty(), "routes without an operation in the document: {missing:?}");
    assert!(extra.is_empty(), "operations the router does not have: {extra:?}");
    // Both spellings of a path are there (with and without the trailing slash).
    assert!(documented.contains(&("/api/auth/login".into(), "POST".into())));
    assert!(documented.contains(&("/password-reset/confirm/{uid}/{token}".into(), "GET".into())));
}

/// Fails when an endpoint or a method is added to the route table without a description.
#[test]
fn every_endpoint_and_method_is_described() {
    for endpoint in Endpoint::ALL {
        for method in endpoint.methods() {
            let description = openapi::describe(*endpoint, method)
                .unwrap_or_else(|| panic!("{endpoint:?} {method} is not described in shared/src/http/openapi.rs"));
            assert!(!description.summary.is_empty());
            assert!((200..300).contains(&description.ok.0), "{endpoint:?} {method}");
        }
        // And nothing is described that the router does not answer.
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            if !endpoint.methods().contains(&method) {
                assert!(openapi::describe(*endpoint, &method).is_none(), "{endpoint:?} {method} is described but not routed");
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
        let content = &op["responses"][ok[0].to_string()]["content"]["application/json"]["schema"];
        assert!(content.is_object(), "{method} {path}: the success body has a schema");
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
    for endpoint in Endpoint::ALL {
        for path in endpoint.paths() {
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
    for (path, method, op) in operations(&document()) {
        let uri = path.replace("{uid}", "1z").replace("{token}", "abc-123");
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
