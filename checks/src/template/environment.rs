//! The functions' environment: only configuration variables, and a valid configuration.

use super::*;

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
    // The old service's key (a cutover's legacy tokens) is held the same way.
    if !env[vars::LEGACY_JWT_SECRET_ID].is_null()
        && ref_target(&env[vars::LEGACY_JWT_SECRET_ID]) != Some("LegacyJwtSecretId")
    {
        problems.push(format!("Globals: {} is not !Ref LegacyJwtSecretId", vars::LEGACY_JWT_SECRET_ID));
    }
    for (place, variables) in &places {
        for var in [
            vars::JWT_SECRET,
            vars::JWT_PRIVATE_KEY,
            vars::JWT_PREVIOUS_KEYS,
            vars::JWT_KEY_ID,
            vars::LEGACY_JWT_SECRET,
        ] {
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
            // An optional secret may default to none (''), never to a name.
            if lower.contains("secret") && !p["Default"].is_null() && p["Default"].as_str() != Some("") {
                problems.push(format!("parameter {name} has a default"));
            }
        }
    }
    problems
}

#[test]
fn environment_holds_only_config_variables() {
    assert_none("environment", environment_problems(&template()));
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
    let source = include_str!("../../../shared/src/config.rs");
    let start = source.find("pub mod vars {").expect("pub mod vars in config.rs");
    let block = &source[start..];
    let block = &block[..block.find("\n}").expect("end of mod vars")];
    let declared: BTreeSet<&str> =
        block.lines().filter_map(|l| l.trim().strip_prefix("pub const ")).filter_map(|l| l.split('"').nth(1)).collect();
    let listed: BTreeSet<&str> = CONFIG_VARS.iter().copied().collect();
    assert_eq!(declared, listed, "update vars::ALL in shared/src/config.rs to list every variable");
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
    // The legacy key in a variable, or its secret named by a default.
    let mut t = template();
    t["Globals"]["Function"]["Environment"]["Variables"][vars::LEGACY_JWT_SECRET] = Value::from("django-insecure-x");
    t["Parameters"]["LegacyJwtSecretId"]["Default"] = Value::from("accounts/prod/django-secret-key");
    let legacy = environment_problems(&t);
    assert!(legacy.iter().any(|p| p.contains("Globals: LEGACY_JWT_SECRET puts a key")), "{legacy:?}");
    assert!(legacy.iter().any(|p| p.contains("parameter LegacyJwtSecretId has a default")), "{legacy:?}");
    assert!(problems.iter().any(|p| p.contains("Globals: JWT_SECRET puts a key")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("LoginFunction: JWT_PRIVATE_KEY puts a key")), "{problems:?}");
}
