//! One function per endpoint (and the catch-all), each with its log group; the outputs.

use super::*;

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
fn every_function_has_a_log_group_and_the_api_an_output() {
    assert_none("logs and outputs", log_and_output_problems(&template()));
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
