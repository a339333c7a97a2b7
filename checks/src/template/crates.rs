//! The function crates' features and `cargo lambda watch`'s router against the route table.

use super::*;

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
        // One event at a time: no worker threads to start (accounts::lambda::serve says why).
        let runtime = "#[tokio::main(flavor = \"current_thread\")]";
        assert!(main.contains(runtime), "functions/{}/src/main.rs does not use {runtime}", endpoint.function());
    }
}

/// Every function crate links for Lambda through the one build script (functions/build.rs: no
/// unwind tables); a crate without it would ship them, 0.28 MB more zipped.
#[test]
fn every_function_crate_uses_the_shared_build_script() {
    let dir = root().join("functions");
    assert!(dir.join("build.rs").is_file() && dir.join("no-unwind-tables.ld").is_file());
    let functions = Endpoint::ALL.iter().map(|e| e.function()).chain([CATCH_ALL_FUNCTION]);
    let missing: Vec<&str> = functions
        .filter(|name| {
            let manifest = read_toml(&dir.join(name).join("Cargo.toml"));
            manifest["package"].get("build").and_then(toml::Value::as_str) != Some("../build.rs")
        })
        .collect();
    assert!(missing.is_empty(), "without build = \"../build.rs\": {missing:?}");
}

fn package_name(manifest: &str) -> String {
    let manifest: toml::Table = manifest.parse().expect("a Cargo manifest");
    manifest["package"]["name"].as_str().unwrap_or_default().to_string()
}

/// A TOML file (a Cargo manifest, samconfig.toml).
pub(super) fn read_toml(path: &Path) -> toml::Table {
    std::fs::read_to_string(path).unwrap().parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(super) fn strings(v: Option<&toml::Value>) -> BTreeSet<String> {
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
        // A method another endpoint of the same path answers (`DELETE /api/auth/user/`) is its.
        let answered = |method: &str| {
            Endpoint::ALL
                .iter()
                .any(|e| e.path() == endpoint.path() && e.methods().iter().any(|m| m.as_str() == method))
        };
        for path in endpoint.paths() {
            for method in WATCH_METHODS.iter().filter(|m| !answered(m)) {
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
