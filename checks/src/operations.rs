//! The operations part of `template.yaml` agrees with the code: the alarms and the dashboard read
//! only business metrics the functions emit (`accounts::telemetry`), under its namespace and
//! dimensions; every function and table is watched; alarms exist only with a topic; the reserved
//! concurrency parameters reach their functions; the access log carries the request ids the
//! function logs carry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use accounts::http::Endpoint;
use accounts::telemetry::{self, names};
use serde_yaml::Value;

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The argument of a short-form intrinsic (`!Ref X` → `Ref`, `X`).
fn tagged<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    match v {
        Value::Tagged(t) if t.tag.to_string().trim_start_matches('!') == name => Some(&t.value),
        _ => None,
    }
}

fn ref_target(v: &Value) -> Option<&str> {
    tagged(v, "Ref")?.as_str()
}

fn resources_of_type<'a>(t: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(k, r)| (k.as_str().unwrap().to_string(), r))
        .collect()
}

/// Every metric an alarm reads: its own (`MetricName`...) or those of its metric math.
fn alarm_metrics(alarm: &Value) -> Vec<&Value> {
    let p = &alarm["Properties"];
    if !p["MetricName"].is_null() {
        return vec![p];
    }
    p["Metrics"].as_sequence().into_iter().flatten().filter_map(|m| m.get("MetricStat").map(|s| &s["Metric"])).collect()
}

fn dimensions(metric: &Value) -> BTreeMap<String, &Value> {
    metric["Dimensions"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|d| (d["Name"].as_str().unwrap().to_string(), &d["Value"]))
        .collect()
}

fn function_names() -> BTreeSet<&'static str> {
    Endpoint::ALL.iter().map(|e| e.function()).collect()
}

/// Problems of a business metric seen in the template: its name, namespace and dimensions.
fn business_metric_problems(place: &str, namespace: &str, name: &str, dims: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    if namespace != telemetry::NAMESPACE {
        return problems;
    }
    if !names::ALL.contains(&name) {
        problems.push(format!("{place}: {name} is not a metric of accounts::telemetry::names"));
    }
    let keys: BTreeSet<&str> = dims.keys().map(String::as_str).collect();
    if keys != BTreeSet::from([telemetry::STAGE_DIMENSION, telemetry::FUNCTION_DIMENSION]) {
        problems.push(format!("{place}: {name} has dimensions {keys:?}, the functions emit Stage and Function"));
    }
    if dims.get(telemetry::STAGE_DIMENSION).is_some_and(|s| s != "Stage") {
        problems.push(format!("{place}: {name}: Stage is not the Stage parameter"));
    }
    if let Some(f) = dims.get(telemetry::FUNCTION_DIMENSION) {
        if !function_names().contains(f.as_str()) {
            problems.push(format!("{place}: {name}: Function {f:?} is not a function of the route table"));
        }
    }
    problems
}

/// `(place, metric name)` of every business metric the alarms and the dashboard read, and the
/// problems found on the way.
fn business_metrics(t: &Value) -> (BTreeSet<String>, Vec<String>) {
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    for (id, alarm) in resources_of_type(t, "AWS::CloudWatch::Alarm") {
        for metric in alarm_metrics(alarm) {
            let (namespace, name) =
                (metric["Namespace"].as_str().unwrap_or(""), metric["MetricName"].as_str().unwrap_or(""));
            let dims = dimensions(metric)
                .into_iter()
                .map(|(k, v)| (k, v.as_str().or_else(|| ref_target(v)).unwrap_or("?").to_string()))
                .collect();
            problems.extend(business_metric_problems(&id, namespace, name, &dims));
            if namespace == telemetry::NAMESPACE {
                used.insert(name.to_string());
            }
        }
    }
    for (id, dashboard) in resources_of_type(t, "AWS::CloudWatch::Dashboard") {
        let body = &dashboard["Properties"]["DashboardBody"];
        let body: serde_json::Value =
            serde_json::from_str(tagged(body, "Sub").and_then(Value::as_str).expect("DashboardBody: !Sub |"))
                .unwrap_or_else(|e| panic!("{id}: the body is not JSON: {e}"));
        for widget in body["widgets"].as_array().unwrap() {
            for row in widget["properties"]["metrics"].as_array().into_iter().flatten() {
                // [namespace, name, dim, value, dim, value, ..., {options}]
                let parts: Vec<&str> = row.as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
                let [namespace, name, dims @ ..] = parts.as_slice() else { continue };
                let dims: BTreeMap<String, String> = dims
                    .chunks(2)
                    .map(|kv| (kv[0].to_string(), kv.get(1).unwrap_or(&"").replace("${Stage}", "Stage")))
                    .collect();
                problems.extend(business_metric_problems(&id, namespace, name, &dims));
                if *namespace == telemetry::NAMESPACE {
                    used.insert(name.to_string());
                }
            }
        }
    }
    (used, problems)
}

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[test]
fn alarms_and_dashboard_read_the_metrics_the_code_emits() {
    let (used, problems) = business_metrics(&template());
    assert_none("business metrics", problems);
    // And every metric the code emits is on the dashboard: a metric nobody sees is dead weight.
    let emitted: BTreeSet<String> = names::ALL.iter().map(|n| n.to_string()).collect();
    assert_eq!(used, emitted, "the template shows exactly the metrics of accounts::telemetry::names");
}

/// Drift is noticed: a renamed metric in the template is reported.
#[test]
fn a_metric_the_code_does_not_emit_is_reported() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap();
    let broken: Value =
        serde_yaml::from_str(&text.replace("MetricName: PasswordResetMailFailed", "MetricName: ResetMailFailed"))
            .unwrap();
    let (_, problems) = business_metrics(&broken);
    assert!(problems.iter().any(|p| p.contains("ResetMailFailed is not a metric")), "{problems:?}");
}

#[test]
fn alarms_exist_only_with_a_topic_and_notify_it() {
    let t = template();
    assert_eq!(t["Parameters"]["AlarmTopicArn"]["Default"].as_str(), Some(""));
    let mut problems = Vec::new();
    for (id, alarm) in resources_of_type(&t, "AWS::CloudWatch::Alarm") {
        if alarm["Condition"].as_str() != Some("HasAlarmTopic") {
            problems.push(format!("{id}: not under Condition HasAlarmTopic"));
        }
        for actions in ["AlarmActions", "OKActions"] {
            let targets: Vec<Option<&str>> =
                alarm["Properties"][actions].as_sequence().into_iter().flatten().map(ref_target).collect();
            if targets != [Some("AlarmTopicArn")] {
                problems.push(format!("{id}: {actions} is not [!Ref AlarmTopicArn]"));
            }
        }
        if alarm["Properties"]["TreatMissingData"].as_str() != Some("notBreaching") {
            problems.push(format!("{id}: no traffic would count as a breach"));
        }
    }
    assert_none("alarms", problems);
}

/// Each function's Lambda errors and throttles are in exactly one alarm each (a new function
/// must join a group), within CloudWatch's 10 metrics per alarm.
#[test]
fn every_function_is_watched_for_errors_and_throttles() {
    let t = template();
    let functions: BTreeSet<String> =
        resources_of_type(&t, "AWS::Serverless::Function").into_iter().map(|(id, _)| id).collect();
    let mut problems = Vec::new();
    for metric_name in ["Errors", "Throttles"] {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (id, alarm) in resources_of_type(&t, "AWS::CloudWatch::Alarm") {
            let metrics = alarm_metrics(alarm);
            if metrics.len() > 10 {
                problems.push(format!("{id}: {} metrics, CloudWatch allows 10", metrics.len()));
            }
            for m in metrics {
                if m["Namespace"].as_str() == Some("AWS/Lambda") && m["MetricName"].as_str() == Some(metric_name) {
                    if let Some(f) = dimensions(m).get("FunctionName").and_then(|v| ref_target(v)) {
                        *seen.entry(f.to_string()).or_default() += 1;
                    }
                }
            }
        }
        for f in &functions {
            match seen.get(f) {
                Some(1) => {}
                n => problems.push(format!("{f}: in {} {metric_name} alarms", n.copied().unwrap_or(0))),
            }
        }
    }
    assert_none("function alarms", problems);
}

/// Each table has a ThrottledRequests and a SystemErrors alarm (Metrics Insights, by table name).
#[test]
fn every_table_is_watched() {
    let t = template();
    let mut problems = Vec::new();
    let expressions: Vec<String> = resources_of_type(&t, "AWS::CloudWatch::Alarm")
        .into_iter()
        .flat_map(|(_, a)| a["Properties"]["Metrics"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|m| tagged(&m["Expression"], "Sub").and_then(Value::as_str).map(str::to_string))
        .collect();
    for (table, _) in resources_of_type(&t, "AWS::DynamoDB::Table") {
        for metric in ["ThrottledRequests", "SystemErrors"] {
            let query = format!(
                "SELECT SUM({metric}) FROM SCHEMA(\"AWS/DynamoDB\", Operation, TableName) WHERE TableName = '${{{table}}}'"
            );
            if !expressions.contains(&query) {
                problems.push(format!("{table}: no {metric} alarm"));
            }
        }
    }
    assert_none("table alarms", problems);
}

#[test]
fn the_other_alarms_are_there() {
    let t = template();
    let alarms: BTreeMap<String, &Value> = resources_of_type(&t, "AWS::CloudWatch::Alarm").into_iter().collect();
    let api = |id: &str, metric: &str| {
        let p = &alarms.get(id).unwrap_or_else(|| panic!("no {id}"))["Properties"];
        assert_eq!((p["Namespace"].as_str(), p["MetricName"].as_str()), (Some("AWS/ApiGateway"), Some(metric)), "{id}");
        assert_eq!(ref_target(dimensions(p)["ApiId"]), Some("AccountsApi"), "{id}");
        p
    };
    api("Api5xxAlarm", "5xx");
    assert_eq!(api("ApiLatencyP99Alarm", "Latency")["ExtendedStatistic"].as_str(), Some("p99"));
    for (id, metric) in
        [("SesBounceRateAlarm", "Reputation.BounceRate"), ("SesComplaintRateAlarm", "Reputation.ComplaintRate")]
    {
        let p = &alarms[id]["Properties"];
        assert_eq!((p["Namespace"].as_str(), p["MetricName"].as_str()), (Some("AWS/SES"), Some(metric)), "{id}");
    }
    assert_eq!(
        alarms["PasswordResetMailFailedAlarm"]["Properties"]["MetricName"].as_str(),
        Some(names::PASSWORD_RESET_MAIL_FAILED)
    );
    // Reuse is detected by both refresh endpoints and by logout: the alarm sums them all.
    let reuse: BTreeSet<String> = alarm_metrics(alarms["RefreshReuseAlarm"])
        .into_iter()
        .map(|m| dimensions(m)[telemetry::FUNCTION_DIMENSION].as_str().unwrap().to_string())
        .collect();
    let detecting = [Endpoint::Refresh, Endpoint::TokenRefresh, Endpoint::Logout].map(|e| e.function().to_string());
    assert_eq!(reuse, BTreeSet::from(detecting));
    assert_eq!(ref_target(&alarms["RefreshReuseAlarm"]["Properties"]["Threshold"]), Some("RefreshReuseAlarmThreshold"));
}

/// `ReservedConcurrentExecutions: !If [Has<P>, !Ref <P>, !Ref AWS::NoValue]` on the functions of
/// each parameter, which defaults to empty (unreserved).
#[test]
fn reserved_concurrency_parameters_reach_their_functions() {
    let t = template();
    let expected = [
        ("LoginReservedConcurrency", vec![Endpoint::Login]),
        ("RegistrationReservedConcurrency", vec![Endpoint::Registration]),
        ("PasswordResetReservedConcurrency", vec![Endpoint::PasswordReset]),
        ("RefreshReservedConcurrency", vec![Endpoint::Refresh, Endpoint::TokenRefresh]),
    ];
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, f) in resources_of_type(&t, "AWS::Serverless::Function") {
        let v = &f["Properties"]["ReservedConcurrentExecutions"];
        if v.is_null() {
            continue;
        }
        let args = tagged(v, "If").and_then(Value::as_sequence).unwrap_or_else(|| panic!("{id}: not an !If"));
        let param = ref_target(&args[1]).unwrap().to_string();
        assert_eq!(args[0].as_str(), Some(format!("Has{param}").as_str()), "{id}");
        assert_eq!(ref_target(&args[2]), Some("AWS::NoValue"), "{id}");
        got.entry(param)
            .or_default()
            .insert(f["Properties"]["CodeUri"].as_str().unwrap().trim_start_matches("functions/").to_string());
    }
    for (param, endpoints) in expected {
        assert_eq!(t["Parameters"][param]["Default"].as_str(), Some(""), "{param}");
        assert!(!t["Conditions"][format!("Has{param}").as_str()].is_null(), "{param}: no condition");
        let want: BTreeSet<String> = endpoints.iter().map(|e| e.function().to_string()).collect();
        assert_eq!(got.remove(param), Some(want), "{param}");
    }
    assert!(got.is_empty(), "unexpected reservations: {got:?}");
}

/// The access log's ids are the ones every function log line carries in its span.
#[test]
fn access_log_carries_the_request_ids() {
    let t = template();
    let format = t["Resources"]["AccountsApi"]["Properties"]["AccessLogSettings"]["Format"].as_str().unwrap();
    let line: serde_json::Value = serde_json::from_str(format).expect("the access log format is a JSON line");
    assert_eq!(line["requestId"], "$context.requestId");
    assert_eq!(line["lambdaRequestId"], "$context.integration.requestId");
}
