"""Turns the raw outputs of bench/run into bench/results/latest.md, latest.json and ratios.png,
and puts the summary between the `<!-- bench:begin -->` / `<!-- bench:end -->` markers of docs/benchmarks.md.

    python report.py RAW_DIR RESULTS_DIR docs/benchmarks.md
"""
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import cost  # noqa: E402

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import limits  # noqa: E402  (issue 17: hashing vs the C reference, memory bound, cold start in ms, packages)

raw, results, readme = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])

# endpoint -> (label, wrk threads/connections, target ratio us/old or None)
TESTS = [
    ("profile_get", "profile GET", 30),
    ("token_verify", "token verify", None),
    ("refresh_rotate", "refresh (rotation, fresh token each)", 50),
    ("login", "login", 12),
    ("registration", "registration (new user each)", None),
]
COLD_START_TARGET = 1.5  # function / hello


def load(name):
    path = raw / name
    return json.loads(path.read_text()) if path.exists() else None


def wrk_result(name, server):
    text = (raw / f"{name}_{server}.txt").read_text()
    figures = json.loads(re.search(r"^BENCH_JSON (.*)$", text, re.M).group(1))
    figures["server_cpu_ms"] = int(re.search(r"^server_cpu_ms: (-?\d+)", text, re.M).group(1))
    figures["loadavg"] = re.search(r"^loadavg: (.*)$", text, re.M).group(1)
    figures["wrk"] = re.search(r"^threads: (\d+) connections: (\d+)", text, re.M).groups()
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    figures["errors"] = sum(figures[k] for k in ("connect_errors", "read_errors", "write_errors", "non_2xx", "timeouts"))
    figures["cpu_ms_per_req"] = figures["server_cpu_ms"] / figures["requests"] if figures["requests"] else float("nan")
    return figures


def ms(us):
    value = us / 1000
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def rate(rps):
    return f"{rps:,.0f}" if rps >= 100 else f"{rps:.1f}"


def verdict(value, target, higher_is_better=True):
    if target is None:
        return ""
    ok = value >= target if higher_is_better else value <= target
    return f"{'✅' if ok else '❌'} ({'≥' if higher_is_better else '≤'} {target}×)"


machine = load("machine.json")
memory = load("memory.json")
loadavg = load("loadavg.json") or {}
throughput = {name: {s: wrk_result(name, s) for s in ("new", "old")} for name, _, _ in TESTS}
argon = limits.hashing(raw)
old_hashers = load("old_hashers.json")
cold = {mode: load(f"cold_start_{mode}.json") for mode in ("embedded", "dynamodb")}
round_trips = (raw / "round_trips.md").read_text() if (raw / "round_trips.md").exists() else None
# perf-reads: the bare axum server's runs (the limit of the read benchmarks) and the request costs.
LIMIT_TESTS = [("profile_get", "profile GET"), ("token_verify", "token verify")]
LIMIT_TARGET = 0.5  # us / bare axum
REFRESH_P99_TARGET_MS = 20
hello = {name: wrk_result(name, "hello") for name, _ in LIMIT_TESTS if (raw / f"{name}_hello.txt").exists()}
request_cost = load("request_cost.json")

lines = []
add = lines.append
add(f"Run of {machine['date']} on {machine['cpu']}, {machine['cores']} cores, {machine['mem_gib']} GiB RAM "
    f"(Linux {machine['kernel']}, {machine['rustc']}, {machine['wrk']}). Load average (1/5/15 min) before: "
    f"{machine['loadavg_before']}, after the wrk runs: {loadavg.get('loadavg_after_wrk', '?')}. "
    f"wrk ran on the same machine, {machine['duration_s']} s per test, the local server (release build, embedded "
    f"SQLite store) and right after it the old service (gunicorn, {machine['old_workers']} workers, SQLite) "
    "at the same concurrency.")
add("")
add("### Throughput and latency")
add("")
add("| endpoint | wrk threads/conns | **us** req/s | p50 | p99 | errors | CPU ms/req | **old** req/s | p50 | p99 | errors | CPU ms/req | **us / old** | target |")
add("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
ratios = {}
for name, label, target in TESTS:
    new, old = throughput[name]["new"], throughput[name]["old"]
    ratio = new["rps"] / old["rps"] if old["rps"] else float("inf")
    ratios[label] = (ratio, target)
    add(f"| {label} | {'/'.join(new['wrk'])} | **{rate(new['rps'])}** | {ms(new['p50_us'])} | {ms(new['p99_us'])} | {new['errors']} "
        f"| {new['cpu_ms_per_req']:.3f} | **{rate(old['rps'])}** | {ms(old['p50_us'])} | {ms(old['p99_us'])} | {old['errors']} "
        f"| {old['cpu_ms_per_req']:.1f} | **{ratio:,.1f}×** | {verdict(ratio, target)} |")
add("")
add("CPU ms/req is the server's user + system CPU time (all processes) over the requests of the test: "
    "it is what other load on the machine disturbs least.")
add("")

# ---- perf-reads: reads and refresh against the limit
limit_rows = []
if hello:
    add("### Reads against the limit: a bare axum server")
    add("")
    add("`bench/hello-axum` answers the same paths with a small JSON body (no state, no middleware; same axum, tokio "
        "and release profile), measured right after ours with the same wrk settings. CPU µs/req: the server's CPU time "
        "over its requests.")
    add("")
    add("| endpoint | **us** req/s | CPU µs/req | p99 | **bare axum** req/s | CPU µs/req | p99 | **us / bare axum** | target |")
    add("|---|---|---|---|---|---|---|---|---|")
    for name, label in LIMIT_TESTS:
        if name not in hello:
            continue
        new, h = throughput[name]["new"], hello[name]
        ratio = new["rps"] / h["rps"] if h["rps"] else float("nan")
        limit_rows.append((label, ratio))
        add(f"| {label} | **{rate(new['rps'])}** | {new['cpu_ms_per_req'] * 1000:.1f} | {ms(new['p99_us'])} "
            f"| **{rate(h['rps'])}** | {h['cpu_ms_per_req'] * 1000:.1f} | {ms(h['p99_us'])} | **{ratio:.2f}×** "
            f"| {verdict(ratio, LIMIT_TARGET)} |")
    r = throughput["refresh_rotate"]["new"]
    p99_ok = "✅" if r["p99_us"] / 1000 < REFRESH_P99_TARGET_MS else "❌"
    add("")
    add(f"Refresh (a real rotation each): {rate(r['rps'])} req/s, {r['cpu_ms_per_req'] * 1000:.0f} CPU µs/req, "
        f"p99 {ms(r['p99_us'])} {p99_ok} (target < {REFRESH_P99_TARGET_MS} ms).")
    add("")
# ---- end perf-reads

add("### Memory (resident set)")
add("")
mem_ratio = memory["old_peak_rss_kib"] / memory["new_peak_rss_kib"]
add("| | us (one process) | old service (master + workers) | old / us | target |")
add("|---|---|---|---|---|")
add(f"| idle after start | {memory['new_idle_rss_kib'] / 1024:.1f} MiB | {memory['old_idle_rss_kib'] / 1024:.1f} MiB "
    f"| {memory['old_idle_rss_kib'] / memory['new_idle_rss_kib']:.1f}× | |")
add(f"| peak during profile, verify, refresh | {memory['new_peak_rss_before_hashing_kib'] / 1024:.1f} MiB "
    f"| {memory['old_peak_rss_before_hashing_kib'] / 1024:.1f} MiB "
    f"| {memory['old_peak_rss_before_hashing_kib'] / memory['new_peak_rss_before_hashing_kib']:.1f}× | |")
add(f"| peak during all runs (login, registration included) | **{memory['new_peak_rss_kib'] / 1024:.1f} MiB** | {memory['old_peak_rss_kib'] / 1024:.1f} MiB "
    f"({memory['old_processes']} processes, sum of each one's peak) | **{mem_ratio:.1f}×** | {limits.memory_verdict(memory)[1]} |")
if "new_wal_bytes_after" in memory:
    add(f"| the embedded store's WAL file after all runs (the token minter wrote beside the server) "
        f"| {memory['new_wal_bytes_after'] / 1048576:.1f} MiB | | | |")
add("")

add("### Password hashing (one hash, this machine)")
add("")
lines.extend(limits.hashing_section(argon, old_hashers, machine["cores"]))

# ---- perf-reads: the cost per request and per user
per_mau = None
if request_cost:
    cost_text, per_mau = cost.section(request_cost, Path(__file__).parent.parent / "template.yaml")
    lines.extend(cost_text.splitlines())
    add("")
# ---- end perf-reads

readme_lines = list(lines)  # the README shows the tables up to here, and a line for the rest
cold_rows = []
if cold["embedded"]:
    add("### Lambda cold start (release binaries, local Runtime API emulator)")
    add("")
    add("Time from spawning the binary until its first `GET /runtime/invocation/next` (init: configuration, store "
        "client, router) and until its answer to that first event (a happy-path request), median of "
        f"{cold['embedded']['functions'][0]['runs']} runs after one unmeasured run, each function's runs alternating "
        "with runs of the bare function, whose median beside it is what its ratio divides by. `embedded`: SQLite in a temp "
        "folder; `dynamodb`: the SDK client as in AWS, its calls going to moto on localhost (moto answers in "
        "milliseconds, so first answers there include the emulator's time).")
    add("")
    add("| function | binary | init, embedded | init, dynamodb | init / hello (dynamodb) | target | first answer, embedded | first answer, dynamodb | peak RSS | status |")
    add("|---|---|---|---|---|---|---|---|---|---|")
    by_mode = {mode: {f["function"]: f for f in cold[mode]["functions"]} for mode in cold if cold[mode]}
    extra = [f for f in cold["embedded"]["functions"] if "init_ms_median" not in f]
    for f in cold["embedded"]["functions"]:
        if "init_ms_median" not in f:
            continue  # a single extra case (the largest avatar), reported below
        e = f
        d = by_mode.get("dynamodb", {}).get(f["function"], {})
        ratio = d.get("init_ratio_to_hello", e["init_ratio_to_hello"])
        is_hello = f["function"] == "hello-lambda"
        cold_rows.append((f["function"], ratio))
        statuses = "/".join(sorted(set(e["statuses"]) | set(d.get("statuses", {}))))
        add(f"| {f['function']} | {f['binary_bytes'] / 1048576:.1f} MiB | {e['init_ms_median']:.2f} ms | "
            f"{d.get('init_ms_median', float('nan')):.2f} ms | {ratio:.2f}× | "
            f"{'' if is_hello else verdict(ratio, COLD_START_TARGET, higher_is_better=False)} | "
            f"{e['answer_ms_median']:.2f} ms | {d.get('answer_ms_median', float('nan')):.2f} ms | "
            f"{max(e.get('peak_rss_kib_max', 0), d.get('peak_rss_kib_max', 0)) / 1024:.1f} MiB | {statuses} |")
    add("")
    for f in extra:
        add(f"- {f['function']}: first answer {f['answer_ms_median']:.0f} ms, peak RSS "
            f"{f['peak_rss_kib_max'] / 1024:.1f} MiB, status {'/'.join(f['statuses'])} (sizes `MemorySize` of the "
            "functions that decode avatars).")
    if extra:
        add("")

lines.extend(limits.package_section(raw))
if limits.cold_start_chart(cold, results / "cold_start.png",
                           f"Lambda cold start, DynamoDB mode (bench/run {machine['date']}, load {machine['loadavg_before']})"):
    add("![Cold start per function, absolute ms](cold_start.png)")
    add("")

if round_trips:
    add("### DynamoDB round trips per request (happy path)")
    add("")
    add("Counted by an SDK interceptor on the store's client (`shared/tests/integration/dynamodb_round_trips.rs`, in the test "
        "command, which pins these numbers).")
    add("")
    lines.extend(round_trips.strip().splitlines())
    add("")

body = "\n".join(lines) + "\n"
functions_only = [v for n, v in cold_rows if n != "hello-lambda"]
if functions_only:
    readme_lines.append(f"Lambda cold start (init, DynamoDB client, median of {cold['dynamodb']['functions'][0]['runs']} runs): "
                        f"{min(functions_only):.1f}–{max(functions_only):.1f}× the bare `lambda_http` function's. "
                        "Cold starts per function, DynamoDB round trips per request: `bench/results/latest.md`.")
readme_body = "\n".join(readme_lines) + "\n"
(results / "latest.md").write_text("# Benchmark: the new service next to the old one\n\n"
                                   "Written by `bench/run`; raw outputs in `.tmp/bench/raw/`.\n\n" + body)
(results / "latest.json").write_text(json.dumps({
    "machine": machine, "loadavg": loadavg, "throughput": throughput, "memory": memory,
    "argon2": argon, "old_hashers": old_hashers, "cold_start": cold,
    "hello_axum": hello, "request_cost": request_cost, "cost_per_mau": per_mau}, indent=2, default=str) + "\n")

# The chart: throughput and memory ratios, and cold start relative to hello.
fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [3, 2]})
labels = [label.split(" (")[0] for label in ratios] + ["peak memory (old / us)"]
values = [r for r, _ in ratios.values()] + [mem_ratio]
# Memory's target is absolute (limits.MEMORY_TARGET_MIB): drawn as the ratio it amounts to.
targets = [t for _, t in ratios.values()] + [memory["old_peak_rss_kib"] / 1024 / limits.MEMORY_TARGET_MIB]
colors = ["tab:green" if t is None or v >= t else "tab:red" for v, t in zip(values, targets)]
bars = left.bar(labels, values, color=colors)
for bar, target in zip(bars, targets):
    if target:
        left.hlines(target, bar.get_x(), bar.get_x() + bar.get_width(), colors="black", linestyles="dashed")
left.bar_label(bars, labels=[f"{v:,.1f}×" for v in values])
left.set_yscale("log")
left.set_ylabel("us / old service (log scale; dashed: target)")
left.set_title("Throughput (req/s) and memory vs the old service")
left.tick_params(axis="x", labelrotation=20)
if cold_rows:
    names = [n for n, _ in cold_rows]
    vals = [v for _, v in cold_rows]
    cbars = right.bar(names, vals, color=["tab:gray" if n == "hello-lambda" else "tab:green" if v <= COLD_START_TARGET else "tab:red" for n, v in cold_rows])
    right.axhline(COLD_START_TARGET, color="black", linestyle="dashed")
    right.bar_label(cbars, labels=[f"{v:.1f}" for v in vals], fontsize=7)
    right.set_ylabel("init time / hello-lambda's (dashed: target)")
    right.set_title("Lambda cold start (init, DynamoDB client)")
    right.tick_params(axis="x", labelrotation=75, labelsize=8)
fig.suptitle(f"bench/run, {machine['date']}, {machine['cores']} cores, load {machine['loadavg_before']}")
fig.tight_layout()
fig.savefig(results / "ratios.png", dpi=90)

# The README's section, between its markers.
text = readme.read_text()
begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(head + begin + "\n" + readme_body.replace("### ", "#### ") + end + tail)
else:
    print(f"{readme}: no {begin} ... {end} markers, left unchanged", file=sys.stderr)
print(body)

# ---- perf-reads: the headline table of the repository's README.md (between its markers)
def headline():
    """Each figure of issue 17 next to the old service or its limit, from this run."""
    t = throughput
    rows = ["| figure | us | old service / limit | ratio | target |", "|---|---|---|---|---|"]
    for name, label, target in TESTS:
        new, old = t[name]["new"], t[name]["old"]
        extra = f", p99 {ms(new['p99_us'])}" if name == "refresh_rotate" else ""
        ratio = new["rps"] / old["rps"] if old["rps"] else float("inf")
        rows.append(f"| {label} req/s | {rate(new['rps'])} ({new['cpu_ms_per_req'] * 1000:.0f} µs CPU/req{extra}) "
                    f"| old: {rate(old['rps'])} | {ratio:.1f}× | {verdict(ratio, target)} |")
    for label, ratio in limit_rows:
        h = hello[[n for n, lab in LIMIT_TESTS if lab == label][0]]
        rows.append(f"| {label} vs a bare axum server | | bare axum: {rate(h['rps'])} req/s | {ratio:.2f}× "
                    f"| {verdict(ratio, LIMIT_TARGET)} |")
    if argon:
        o, r = argon["ours"], argon["reference"]
        rows.append(f"| argon2id hash (m={argon['params']['memory_kib']} KiB, t={argon['params']['iterations']}) "
                    f"| {o['cpu_ms_mean']:.1f} ms CPU | C reference (argon2-cffi): {r['cpu_ms_mean']:.1f} ms "
                    f"| {o['cpu_ratio']:.2f}× | {verdict(o['cpu_ratio'], limits.HASH_TARGET, higher_is_better=False)} |")
    rows.append(f"| peak RSS, whole run | {memory['new_peak_rss_kib'] / 1024:.0f} MiB | old: {memory['old_peak_rss_kib'] / 1024:.0f} MiB "
                f"| old / us {mem_ratio:.1f}× | {'✅' if memory['new_peak_rss_kib'] / 1024 <= limits.MEMORY_TARGET_MIB else '❌'} "
                f"(≤ {limits.MEMORY_TARGET_MIB} MiB) |")
    functions_only = [v for n, v in cold_rows if n != "hello-lambda"]
    if functions_only:
        rows.append(f"| cold start init, DynamoDB mode (every function) | | hello `lambda_http` function "
                    f"| {min(functions_only):.1f}–{max(functions_only):.1f}× "
                    f"| {verdict(max(functions_only), COLD_START_TARGET, higher_is_better=False)} |")
    sizes_path = raw / "package_sizes.json"
    if sizes_path.exists():
        sizes = json.loads(sizes_path.read_text())
        largest, s = max(sizes.items(), key=lambda kv: kv[1]["zip_bytes"])
        rows.append(f"| largest Lambda package (arm64, zipped) | {s['zip_bytes'] / 1e6:.2f} MB ({largest}) | | "
                    f"| {'✅' if s['zip_bytes'] <= limits.PACKAGE_TARGET_BYTES else '❌'} "
                    f"(≤ {limits.PACKAGE_TARGET_BYTES / 1e6:.0f} MB) |")
    if per_mau is not None:
        rows.append(f"| cost per monthly active user | ${per_mau:.5f} | Cognito ${cost.COGNITO_ESSENTIALS_MAU}, "
                    f"Supabase ${cost.SUPABASE_MAU} | {cost.SUPABASE_MAU / per_mau:.1f}× below Supabase "
                    f"| {'✅' if per_mau <= cost.TARGET_MAU else '❌'} (≤ ${cost.TARGET_MAU}) |")
    return (f"Latest `bench/run` ({machine['date']}, {machine['cpu']}, {machine['cores']} cores; load average "
            f"{machine['loadavg_before']} before, {loadavg.get('loadavg_after_wrk', '?')} after the wrk runs). Every "
            "figure, the method and the chart: [docs/benchmarks.md](docs/benchmarks.md).\n\n" + "\n".join(rows) + "\n\n"
            "![Throughput and memory against the old service, cold start against a hello function]"
            "(bench/results/ratios.png)\n")


top_readme = Path(__file__).parent.parent / "README.md"
text = top_readme.read_text()
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    top_readme.write_text(head + begin + "\n" + headline() + end + tail)
else:
    print(f"{top_readme}: no {begin} ... {end} markers, left unchanged", file=sys.stderr)
# ---- end perf-reads
