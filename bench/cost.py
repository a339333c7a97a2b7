"""The cost per request and per monthly active user, from what bench/run measured (request-cost:
DynamoDB units, Lambda durations and log bytes per request) and template.yaml's MemorySize.
Called by report.py; the list prices and the usage profile are stated here and printed with the table.
"""
import math
import re
from pathlib import Path

# List prices, us-east-1, as published on the pages named (checked 2026-12):
# https://aws.amazon.com/lambda/pricing/ : arm64, $0.0000133334 per GB-second, $0.20 per 1M requests.
# A provided.al2023 function is billed for its init phase too (the cold start).
LAMBDA_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1e6
# https://aws.amazon.com/api-gateway/pricing/ : HTTP APIs, $1.00 per 1M requests (first 300M a month).
API_REQUEST = 1.00 / 1e6
# https://aws.amazon.com/dynamodb/pricing/on-demand/ : on-demand, Standard table class, since the
# price cut of 2024-11-01: $0.625 per 1M write request units, $0.125 per 1M read request units.
DYNAMODB_WRITE_UNIT = 0.625 / 1e6
DYNAMODB_READ_UNIT = 0.125 / 1e6
# https://aws.amazon.com/cloudwatch/pricing/ : Logs, standard class, $0.50 per GB ingested.
LOG_GB = 0.50
# Lambda's own lines per invocation (START, END, REPORT in text format): about this many bytes.
LAMBDA_PLATFORM_LOG_BYTES = 300
# Lambda gives CPU in proportion to memory: one full vCPU at 1,769 MB.
FULL_VCPU_MB = 1769
# Competitors, list prices per MAU: https://aws.amazon.com/cognito/pricing/ (Essentials, after
# the free 10,000 MAU) and https://supabase.com/pricing (Pro plan, per MAU above the 100,000 included).
COGNITO_ESSENTIALS_MAU = 0.015
SUPABASE_MAU = 0.00325
TARGET_MAU = 0.002

# The usage profile of one monthly active user: 1 h of use a day, every day (30 days), in 4
# sessions of the app; 15-minute access tokens. Requests per month by priced request.
DAYS = 30
USAGE = {
    # One rotation per app session (its start finds the access token expired; the new one
    # lasts the 15-minute session), and one more a day for a session that runs past 15 minutes.
    "POST refresh": (4 + 1) * DAYS,
    # The app reads the profile at each start and on 2 more screens a session.
    "GET profile": 4 * 3 * DAYS,
    "GET user": 4 * DAYS,
    # Another service of the app checks a token once per session.
    "POST token/verify": 4 * DAYS,
    # A new login once a week (a new device, a logout).
    "POST login": 30 / 7,
    "POST logout": 1,
    # Registration once per user; spread over a year of use.
    "POST registration": 1 / 12,
}
USAGE_TEXT = ("1 h of use a day for 30 days, in 4 app sessions of 15 minutes a day, with 15-minute access tokens: a "
              "refresh at each session start and one more a day for a longer session (5 a day), the profile read 3 "
              "times and the user once a session, "
              "one token verify a session (another service), a login a week, a logout a month, registration once a year")


def memory_by_function(template: Path) -> dict:
    """MemorySize (MB) of each function binary in template.yaml (Globals' value by default)."""
    text = template.read_text()
    default = int(re.search(r"^Globals:\n(?:[ \t].*\n|\n)*?\s+MemorySize: (\d+)", text, re.M).group(1))
    sizes = {}
    # One resource: a line "  Name:" under Resources, up to the next such line.
    for block in re.split(r"\n(?=  [A-Za-z0-9]+:\n)", text.split("\nResources:", 1)[1]):
        binary = re.search(r"^\s+Binary: ([\w-]+)", block, re.M)
        if binary:
            memory = re.search(r"^    \s*MemorySize: (\d+)", block, re.M)
            sizes[binary.group(1)] = int(memory.group(1)) if memory else default
    return sizes


def billed_ms(row, memory_mb):
    """The warm duration as Lambda would bill it: the CPU part stretched by the vCPU share below
    1,769 MB, rounded up to the millisecond."""
    wall, cpu = row["warm_ms_median"], row["warm_cpu_ms_per_request"]
    if math.isnan(wall):
        return float("nan")
    stretch = max(1.0, FULL_VCPU_MB / memory_mb)
    return math.ceil(wall + min(cpu, wall) * (stretch - 1))


def costs(request_cost, template: Path):
    """Rows of the per-request table and the per-MAU total."""
    memory = memory_by_function(template)
    rows = []
    for r in request_cost["requests"]:
        mb = memory.get(r["function"], 0)
        ms = billed_ms(r, mb) if mb else float("nan")
        lambda_compute = ms / 1000 * mb / 1024 * LAMBDA_GB_SECOND
        logs = (r.get("log_bytes_per_request", 0) + LAMBDA_PLATFORM_LOG_BYTES) / 1e9 * LOG_GB
        dynamo = r["read_units"] * DYNAMODB_READ_UNIT + r["write_units"] * DYNAMODB_WRITE_UNIT
        parts = {"api": API_REQUEST, "lambda_requests": LAMBDA_REQUEST, "lambda_compute": lambda_compute,
                 "dynamodb": dynamo, "logs": logs}
        total = sum(parts.values())
        rows.append({**r, "memory_mb": mb, "billed_ms": ms, "parts": parts, "per_request": total,
                     "per_month": USAGE.get(r["request"], 0)})
    per_mau = sum(r["per_request"] * r["per_month"] for r in rows)
    by_part = {k: sum(r["parts"][k] * r["per_month"] for r in rows) for k in rows[0]["parts"]} if rows else {}
    return rows, per_mau, by_part


def section(request_cost, template: Path):
    """The markdown of the cost section."""
    rows, per_mau, by_part = costs(request_cost, template)
    out = []
    add = out.append
    add("### Cost per request and per monthly active user (us-east-1 list prices)")
    add("")
    add("DynamoDB units: each happy-path request's calls (recorded by an SDK interceptor against moto), sized by "
        "DynamoDB's documented rules (moto's own `ConsumedCapacity` is a constant per operation, so it is not used). "
        "Lambda: the function's release binary on the Runtime API emulator, median of "
        f"{rows[0]['warm_runs'] if rows else 0} warm invocations against moto, its CPU part stretched by "
        f"{FULL_VCPU_MB} MB / MemorySize (Lambda's CPU share), rounded up to 1 ms, at template.yaml's MemorySize "
        "(x86-64 here; Lambda runs arm64). Logs: the bytes the function printed per warm request plus "
        f"{LAMBDA_PLATFORM_LOG_BYTES} bytes of Lambda's own lines.")
    add("")
    add("| request | DynamoDB calls | RRU | WRU | MemorySize | warm ms (CPU ms) | billed ms | log bytes | $ / 1M requests "
        "| of which API Gateway / Lambda / DynamoDB / logs | requests / MAU / month | $ / MAU / month |")
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["parts"]
        add(f"| {r['request']} | {len(r['calls'])} ({', '.join(r['calls'])}) | {r['read_units']:g} | {r['write_units']:g} "
            f"| {r['memory_mb']} MB | {r['warm_ms_median']:.2f} ({r['warm_cpu_ms_per_request']:.2f}) | {r['billed_ms']:.0f} "
            f"| {r.get('log_bytes_per_request', 0):.0f} | **{r['per_request'] * 1e6:.2f}** "
            f"| {p['api'] * 1e6:.2f} / {(p['lambda_requests'] + p['lambda_compute']) * 1e6:.2f} / {p['dynamodb'] * 1e6:.2f} "
            f"/ {p['logs'] * 1e6:.2f} | {r['per_month']:.1f} | {r['per_request'] * r['per_month']:.6f} |")
    add("")
    verdict = "✅" if per_mau <= TARGET_MAU else "❌"
    add(f"**Per monthly active user: ${per_mau:.5f}** {verdict} (target ≤ ${TARGET_MAU}), of which API Gateway "
        f"${by_part.get('api', 0):.5f}, Lambda ${by_part.get('lambda_requests', 0) + by_part.get('lambda_compute', 0):.5f}, "
        f"DynamoDB ${by_part.get('dynamodb', 0):.5f}, logs ${by_part.get('logs', 0):.5f}; "
        f"Cognito Essentials ${COGNITO_ESSENTIALS_MAU}/MAU ({COGNITO_ESSENTIALS_MAU / per_mau:.0f}× ours), "
        f"Supabase ${SUPABASE_MAU}/MAU ({SUPABASE_MAU / per_mau:.1f}× ours). Storage (DynamoDB $0.25/GB-month, "
        "under 1 KB per user and session) and the cold starts' init time (a few ms each, once per instance) are left out.")
    add("")
    add(f"Usage profile: {USAGE_TEXT}. Prices: Lambda arm64 ${LAMBDA_GB_SECOND}/GB-s + $0.20/1M requests, HTTP API "
        "$1.00/1M requests, DynamoDB on-demand $0.125/1M read and $0.625/1M write request units, CloudWatch Logs "
        "$0.50/GB (sources in bench/cost.py).")
    add("")
    return "\n".join(out), per_mau
