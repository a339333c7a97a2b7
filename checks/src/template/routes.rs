//! The HTTP API's routes against the route table, and through the real router.

use super::*;

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

#[test]
fn routes_match_the_route_table() {
    assert_none("routes", route_problems(&template()));
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
