"""Deploy rehearsal: creates the stack CloudFormation would deploy (the template after the SAM
transform, `.tmp/template.expanded.json` from scripts/expand_template.py) in moto's CloudFormation,
then checks that what came out is what the functions expect:

- the tables have the keys, index, TTL and billing of the tables the code itself creates
  (`DynamoStore::create_tables`, run here through `local-server --create-tables`);
- every function names the stack's own tables and bucket in its environment, runs under its own
  role, and has the reserved concurrency its parameter asks for (and only then);
- every role trusts Lambda and holds exactly the template's policies, resolved to the stack's
  physical tables, bucket and identity;
- the bucket is private, encrypted and expires unconfirmed uploads; the log groups have the
  retention; the dashboard is JSON naming the stage.

Resources moto's CloudFormation cannot create are stripped first (references to them become
stand-in strings) and listed, so the output says what this rehearsal does not cover.

Usage: python scripts/deploy_rehearsal.py [EXPANDED_TEMPLATE]
It runs its own moto server on a free port (a stack's functions and roles in the tests' moto
would break their reads of its state), stopped at the end. Environment: LOCAL_SERVER_BIN
(default target/debug/local-server).
"""
import ast
import io
import json
import os
import re
import socket
import subprocess
import urllib.request
import sys
import time
import zipfile

import boto3
from moto.cloudformation.parsing import get_model_map

STAGE = "rehearsal"
# Parameters an operator must give, and a few set away from their defaults to see them applied.
PARAMETERS = {
    "JwtSecretId": "accounts/rehearsal/jwt-secret",
    "PasswordResetUrl": "https://app.example.com/reset/{uid}/{token}/",
    "Stage": STAGE,
    "LoginReservedConcurrency": "5",
    "LogRetentionInDays": "14",
    # A cutover's legacy tokens: the conditional grants and variables deployed.
    "LegacyJwtSecretId": "accounts/rehearsal/legacy-secret-key",
    "LegacyTokensUntil": "2027-01-15T12:00:00Z",
}
# The functions whose reserved concurrency LoginReservedConcurrency sets.
RESERVED = {"LoginFunction": 5}
# Environment variables that name a table, and the bucket.
TABLE_VARS = ("USERS_TABLE", "SESSIONS_TABLE", "BLACKLIST_TABLE", "THROTTLE_TABLE")
ACCOUNT = "123456789012"  # moto's default account
REGION = os.environ.get("AWS_REGION", "us-east-1")


def fail(problems):
    print("deploy rehearsal FAILED:")
    for p in problems:
        print("  - " + p)
    sys.exit(1)


# ----- stripping what the emulator cannot create ---------------------------------------------------


def strip_unsupported(template):
    """Removes resources of types moto's CloudFormation has no model for; every reference to them
    (Ref, GetAtt, ${X} in Sub, DependsOn) becomes a stand-in string. Returns [(type, id)]."""
    supported = get_model_map()
    resources = template["Resources"]
    stripped = sorted((r["Type"], rid) for rid, r in resources.items() if r["Type"] not in supported)
    gone = {rid for _, rid in stripped}
    for rid in gone:
        del resources[rid]

    def stand_in(rid, attr=None):
        return f"stand-in-{rid}" + (f".{attr}" if attr else "")

    def sub_text(text):
        def repl(m):
            name = m.group(1)
            rid, _, attr = name.partition(".")
            return stand_in(rid, attr or None) if rid in gone else m.group(0)

        return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", repl, text)

    def walk(v):
        if isinstance(v, list):
            return [walk(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, a), = v.items()
            if k == "Ref" and a in gone:
                return stand_in(a)
            if k == "Fn::GetAtt":
                rid, attr = a if isinstance(a, list) else a.split(".", 1)
                if rid in gone:
                    return stand_in(rid, attr)
            if k == "Fn::Sub":
                if isinstance(a, str):
                    return {"Fn::Sub": sub_text(a)}
                return {"Fn::Sub": [sub_text(a[0]), walk(a[1])]}
        out = {}
        for k, x in v.items():
            if k == "DependsOn":
                deps = [d for d in ([x] if isinstance(x, str) else x) if d not in gone]
                if deps:
                    out[k] = deps
            else:
                out[k] = walk(x)
        return out

    template["Resources"] = walk(resources)
    template["Outputs"] = walk(template.get("Outputs", {}))
    return stripped


# ----- resolving the template's values as CloudFormation would ----------------------------------


NO_VALUE = object()  # `Ref AWS::NoValue`: dropped from the list (or object) it is in


class Resolver:
    def __init__(self, physical, parameters, arns, conditions=None):
        self.physical = physical  # logical id -> physical id
        self.parameters = parameters
        self.arns = arns  # logical id -> Arn
        self.conditions = conditions or {}

    def holds(self, v):
        """A condition of the template's Conditions with these parameters."""
        (k, a), = v.items()
        if k == "Fn::Not":
            return not self.holds(a[0])
        if k == "Fn::And":
            return all(self.holds(c) for c in a)
        if k == "Fn::Or":
            return any(self.holds(c) for c in a)
        if k == "Fn::Equals":
            return str(self(a[0])) == str(self(a[1]))
        if k == "Condition":
            return self.holds(self.conditions[a])
        raise KeyError(f"condition function {k}")

    def ref(self, name):
        pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical[name]

    def get_att(self, rid, attr):
        if attr == "Arn":
            return self.arns[rid]
        raise KeyError(f"{rid}.{attr}")

    def __call__(self, v):
        if isinstance(v, list):
            return [y for y in (self(x) for x in v) if y is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (k, a), = v.items()
            if k == "Ref" and a == "AWS::NoValue":
                return NO_VALUE
            if k == "Ref":
                return self.ref(a)
            if k == "Fn::If":
                return self(a[1] if self.holds(self.conditions[a[0]]) else a[2])
            if k == "Fn::GetAtt":
                rid, attr = a if isinstance(a, list) else a.split(".", 1)
                return self.get_att(rid, attr)
            if k == "Fn::Sub":
                text, extra = (a, {}) if isinstance(a, str) else (a[0], self(a[1]))

                def repl(m):
                    name = m.group(1)
                    if name in extra:
                        return str(extra[name])
                    rid, _, attr = name.partition(".")
                    return str(self.get_att(rid, attr) if attr else self.ref(name))

                return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", repl, text)
            if k == "Fn::Join":
                return a[0].join(str(x) for x in self(a[1]))
        return {k: y for k, y in ((k, self(x)) for k, x in v.items()) if y is not NO_VALUE}


def listify(v):
    return v if isinstance(v, list) else [v]


def parse_policy(doc):
    """A policy document as IAM returns it: a dict, JSON text, or (moto, for policies its
    CloudFormation created) the Python repr of the dict."""
    if isinstance(doc, dict):
        return doc
    try:
        return json.loads(doc)
    except json.JSONDecodeError:
        return ast.literal_eval(doc)


def canonical_policy(doc):
    """Statements with one-or-many fields as sorted lists, so equal policies compare equal."""
    out = []
    for s in listify(doc.get("Statement", [])):
        c = {k: (sorted(listify(x)) if k in ("Action", "Resource", "NotAction") else x) for k, x in s.items()}
        out.append(json.dumps(c, sort_keys=True))
    return sorted(out)


# ----- the code's own tables ------------------------------------------------------------------------


def describe_table(ddb, name):
    t = ddb.describe_table(TableName=name)["Table"]
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    return {
        "KeySchema": t["KeySchema"],
        "AttributeDefinitions": sorted(t["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
        "GlobalSecondaryIndexes": sorted(
            ({"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]} for g in t.get("GlobalSecondaryIndexes", [])),
            key=lambda g: g["IndexName"],
        ),
        "BillingMode": t.get("BillingModeSummary", {}).get("BillingMode"),
        "TTL": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") else None,
    }


def code_tables(endpoint, prefix):
    """The tables `DynamoStore::create_tables` makes, named `<prefix>-<var>`: {var: description}."""
    names = {var: f"{prefix}-{var.split('_')[0].lower()}" for var in TABLE_VARS}
    binary = os.environ.get("LOCAL_SERVER_BIN") or os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "debug", "local-server")
    env = dict(os.environ, STORAGE="dynamodb", DYNAMODB_ENDPOINT=endpoint, JWT_SECRET="r" * 64, RUST_LOG="warn", **names)
    subprocess.run([binary, "--create-tables"], env=env, check=True)
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION)
    return {var: describe_table(ddb, name) for var, name in names.items()}


# ----- the rehearsal ----------------------------------------------------------------------------------


def own_moto():
    """Starts scripts/moto_serial.py on a free port: (process, endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, os.path.join(here, "moto_serial.py"), "127.0.0.1", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/")
            return proc, endpoint
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    fail(["moto did not start"])


def main():
    started = time.monotonic()
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(".tmp", "template.expanded.json")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    moto, endpoint = own_moto()
    try:
        rehearse(path, endpoint, started)
    finally:
        moto.terminate()
        moto.wait()


def rehearse(path, endpoint, started):
    client = lambda service: boto3.client(service, endpoint_url=endpoint, region_name=REGION)  # noqa: E731
    cfn, ddb, iam, lam, s3, logs, cw = (client(s) for s in ("cloudformation", "dynamodb", "iam", "lambda", "s3", "logs", "cloudwatch"))

    with open(path, encoding="utf-8") as f:
        template = json.load(f)
    run = f"{int(time.time() * 1000) % 10**8}"
    stack = f"accounts-rehearsal-{run}"

    # What the deploy needs outside the stack: the packaged code `sam package` would upload, the
    # secret the operator creates, the topic of the alarms.
    params = dict(PARAMETERS)
    params["AlarmTopicArn"] = client("sns").create_topic(Name=f"alarms-{run}")["TopicArn"]
    client("secretsmanager").create_secret(Name=f"{params['JwtSecretId']}-{run}", SecretString="s" * 64)
    params["JwtSecretId"] = f"{params['JwtSecretId']}-{run}"
    code_buckets = {r["Properties"]["Code"]["S3Bucket"] for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"}
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n")
    for bucket in code_buckets:
        s3.create_bucket(Bucket=bucket)
    for r in template["Resources"].values():
        if r["Type"] == "AWS::Lambda::Function":
            code = r["Properties"]["Code"]
            s3.put_object(Bucket=code["S3Bucket"], Key=code["S3Key"], Body=zipped.getvalue())

    stripped = strip_unsupported(template)
    cfn.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    for _ in range(600):
        status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    if status != "CREATE_COMPLETE":
        events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
        fail([f"stack {status}"] + [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', e['ResourceStatus'])}" for e in events if "FAILED" in e["ResourceStatus"]])

    # moto gives Lambda permissions no physical id: they are checked through the function's policy.
    physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in cfn.describe_stack_resources(StackName=stack)["StackResources"]}
    resources = template["Resources"]
    of_type = lambda kind: sorted(rid for rid, r in resources.items() if r["Type"] == kind)  # noqa: E731
    problems = []
    gaps = set()  # properties the emulator ignores
    missing = sorted(set(resources) - set(physical))
    # Conditional resources whose condition is false are rightly absent.
    missing = [rid for rid in missing if "Condition" not in resources[rid]]
    if missing:
        problems.append(f"not created: {missing}")

    # --- tables: as the code would create them
    arns = {}
    tables = {}
    for rid in of_type("AWS::DynamoDB::Table"):
        d = ddb.describe_table(TableName=physical[rid])["Table"]
        arns[rid] = d["TableArn"]
        tables[rid] = d
    fn_ids = of_type("AWS::Lambda::Function")
    configs = {rid: lam.get_function_configuration(FunctionName=physical[rid]) for rid in fn_ids}
    # Which table each variable names (every function sees the same ones, from Globals).
    table_of_var = {}
    for rid, c in configs.items():
        env = c.get("Environment", {}).get("Variables", {})
        for var in TABLE_VARS:
            if var in env:
                owner = [t for t in tables if physical[t] == env[var]]
                if not owner:
                    problems.append(f"{rid}: {var}={env[var]} is no table of the stack")
                elif table_of_var.setdefault(var, owner[0]) != owner[0]:
                    problems.append(f"{rid}: {var} names {owner[0]}, other functions {table_of_var[var]}")
    expected = code_tables(endpoint, f"code-{run}")
    for var, want in expected.items():
        rid = table_of_var.get(var)
        if rid is None:
            problems.append(f"no function names {var}")
            continue
        got = describe_table(ddb, physical[rid])
        spec = resources[rid]["Properties"].get("TimeToLiveSpecification", {})
        if got["TTL"] is None and spec.get("Enabled"):
            gaps.add("DynamoDB TimeToLiveSpecification: the template's is compared with the code's instead")
            got["TTL"] = spec["AttributeName"]
        for key in want:
            if got[key] != want[key]:
                problems.append(f"{rid} ({var}): {key} is {got[key]}, the code creates {want[key]}")
        if tables[rid].get("DeletionProtectionEnabled") is not None and str(tables[rid]["DeletionProtectionEnabled"]).lower() != "true":
            problems.append(f"{rid}: deletion protection off")
    for rid in tables:
        if rid not in table_of_var.values():
            problems.append(f"{rid}: no function uses it")

    # --- bucket
    buckets = of_type("AWS::S3::Bucket")
    for rid in buckets:
        arns[rid] = f"arn:aws:s3:::{physical[rid]}"
        name = physical[rid]
        props = resources[rid]["Properties"]
        try:
            block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        except s3.exceptions.ClientError:
            gaps.add("S3 PublicAccessBlockConfiguration, LifecycleConfiguration, OwnershipControls: checked in the template instead")
            block = props.get("PublicAccessBlockConfiguration", {})
        if not all(block.values()) or len(block) != 4:
            problems.append(f"{rid}: public access not fully blocked: {block}")
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        if rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] != "AES256":
            problems.append(f"{rid}: not encrypted: {rules}")
        try:
            lifecycle = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]}
        except s3.exceptions.ClientError:
            lifecycle = {r["Id"]: r for r in props.get("LifecycleConfiguration", {}).get("Rules", [])}
        if "avatar-uploads/" not in {r.get("Prefix", r.get("Filter", {}).get("Prefix")) for r in lifecycle.values()}:
            problems.append(f"{rid}: unconfirmed uploads (avatar-uploads/) never expire")
        if props.get("OwnershipControls", {}).get("Rules", [{}])[0].get("ObjectOwnership") != "BucketOwnerEnforced":
            problems.append(f"{rid}: ACLs are not disabled")
        for want in props.get("LifecycleConfiguration", {}).get("Rules", []):
            if want["Id"] not in lifecycle or lifecycle[want["Id"]]["Status"] != want["Status"]:
                problems.append(f"{rid}: lifecycle rule {want['Id']} missing or not {want['Status']}")
    for rid, c in configs.items():
        bucket = c.get("Environment", {}).get("Variables", {}).get("MEDIA_BUCKET")
        if bucket is not None and bucket not in {physical[b] for b in buckets}:
            problems.append(f"{rid}: MEDIA_BUCKET={bucket} is no bucket of the stack")

    # --- roles and functions
    for rid in of_type("AWS::IAM::Role"):
        arns[rid] = iam.get_role(RoleName=physical[rid])["Role"]["Arn"]
    defaults = {k: str(v["Default"]) for k, v in template["Parameters"].items() if "Default" in v}
    resolve = Resolver(physical, {**defaults, **params}, arns, template.get("Conditions", {}))
    for rid in of_type("AWS::IAM::Role"):
        props = resources[rid]["Properties"]
        role = iam.get_role(RoleName=physical[rid])["Role"]
        trust = role["AssumeRolePolicyDocument"]
        if canonical_policy(trust) != canonical_policy(props["AssumeRolePolicyDocument"]):
            problems.append(f"{rid}: trust policy {trust}")
        got = {}
        for name in iam.list_role_policies(RoleName=physical[rid])["PolicyNames"]:
            doc = iam.get_role_policy(RoleName=physical[rid], PolicyName=name)["PolicyDocument"]
            got[name] = canonical_policy(parse_policy(doc))
        want = {p["PolicyName"]: canonical_policy(resolve(p["PolicyDocument"])) for p in props.get("Policies", [])}
        if got != want:
            problems.append(f"{rid}: inline policies differ from the template:\n      got  {got}\n      want {want}")
        attached = sorted(p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=physical[rid])["AttachedPolicies"])
        if not attached and props.get("ManagedPolicyArns"):
            gaps.add("IAM ManagedPolicyArns of a role (moto attaches none; AWSLambdaBasicExecutionRole is SAM's own)")
        elif attached != sorted(props.get("ManagedPolicyArns", [])):
            problems.append(f"{rid}: managed policies {attached}")
    for rid, c in configs.items():
        props = resources[rid]["Properties"]
        if c["Role"] != resolve(props["Role"]):
            problems.append(f"{rid}: runs as {c['Role']}, not {resolve(props['Role'])}")
        for key in ("Runtime", "Handler", "MemorySize", "Timeout"):
            if key in props and c.get(key) != props[key]:
                problems.append(f"{rid}: {key} {c.get(key)} != {props[key]}")
        reserved = lam.get_function_concurrency(FunctionName=physical[rid]).get("ReservedConcurrentExecutions")
        reserved = None if reserved is None else int(reserved)
        if reserved != RESERVED.get(rid):
            problems.append(f"{rid}: reserved concurrency {reserved}, want {RESERVED.get(rid)}")
        env = c.get("Environment", {}).get("Variables", {})
        if env.get("STAGE") != STAGE:
            problems.append(f"{rid}: STAGE={env.get('STAGE')}")
        # Every table the role may touch is one the function's environment names.
        named = {arns[t] for t in tables if physical[t] in env.values()}
        role_id = props["Role"]["Fn::GetAtt"][0]
        for p in resources[role_id]["Properties"].get("Policies", []):
            for s in listify(resolve(p["PolicyDocument"])["Statement"]):
                for arn in listify(s.get("Resource", [])):
                    if ":dynamodb:" in arn and arn.split("/index/")[0] not in named:
                        problems.append(f"{rid}: its role grants {arn}, a table its environment does not name")

    # --- API Gateway's permission to invoke each function, one per route (the API is a stand-in)
    for rid in fn_ids:
        want = sum(1 for r in resources.values() if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["FunctionName"] == {"Ref": rid})
        try:
            got = len(json.loads(lam.get_policy(FunctionName=physical[rid])["Policy"])["Statement"])
        except lam.exceptions.ResourceNotFoundException:
            got = 0
        if got != want:
            problems.append(f"{rid}: {got} invoke permissions, the template has {want}")

    # --- log groups and dashboard
    pages = logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=f"/aws/lambda/{stack}-")
    groups = {g["logGroupName"]: g for page in pages for g in page["logGroups"]}
    for rid in fn_ids:
        g = groups.get(f"/aws/lambda/{physical[rid]}")
        if g is None:
            problems.append(f"{rid}: no log group /aws/lambda/{physical[rid]}")
        elif g.get("retentionInDays") != int(params["LogRetentionInDays"]):
            problems.append(f"{rid}: log retention {g.get('retentionInDays')}")
    for rid in of_type("AWS::CloudWatch::Dashboard"):
        body = json.loads(cw.get_dashboard(DashboardName=physical[rid])["DashboardBody"])
        stages = {m[m.index("Stage") + 1] for w in body["widgets"] for m in w["properties"].get("metrics", []) if "Stage" in m}
        if stages != {STAGE}:
            problems.append(f"{rid}: the business metrics' Stage is {stages}")

    if problems:
        fail(problems)
    created = len(physical)
    print(f"deploy rehearsal: stack {stack} created on moto from {path}: {created} resources, in {time.monotonic() - started:.1f} s")
    print(f"  checked: {len(tables)} tables against DynamoStore::create_tables (keys, index, TTL, billing); "
          f"{len(configs)} functions (tables and bucket of their environment, role, reserved concurrency, STAGE); "
          f"{len(of_type('AWS::IAM::Role'))} roles (trust, inline policies resolved to the stack's resources, managed policies); "
          f"{len(buckets)} bucket (public access block, encryption, lifecycle); log groups; dashboard")
    print("  not creatable in moto's CloudFormation (stripped; references replaced by stand-ins), so not rehearsed:")
    kinds = {}
    for kind, rid in stripped:
        kinds.setdefault(kind, []).append(rid)
    for kind, ids in sorted(kinds.items()):
        shown = ", ".join(ids) if len(ids) <= 4 else f"{len(ids)} ({', '.join(ids[:3])}, ...)"
        print(f"    {kind}: {shown}")
    print("  ignored by the emulator:")
    for gap in sorted(gaps) + ["dynamic references ({{resolve:secretsmanager:...}} stays literal in the environment)"]:
        print(f"    {gap}")


if __name__ == "__main__":
    main()
