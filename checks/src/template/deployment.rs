//! The bucket and CloudFront, custom domains, SAM builds and the samconfig.toml environments.

use super::crates::{read_toml, strings};
use super::*;

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
        // The secret the deploy guide's first step creates (docs/operations.md) for this stage.
        if let (Some(secret), Some(stage)) = (set.get("JwtSecretId"), set.get("Stage")) {
            if *secret != format!("accounts/{stage}/jwt-secret") {
                problems.push(format!(
                    "samconfig.toml [{env}]: JwtSecretId {secret} is not accounts/{stage}/jwt-secret (docs/operations.md, Deploy)"
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
