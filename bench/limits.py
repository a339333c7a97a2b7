"""The figures of issue 17's targets 1, 2, 3 and 5 for report.py: password hashing against the C
reference, the memory bound, cold starts in absolute milliseconds, and the zipped arm64 packages.
Each function returns markdown lines (or writes a chart); report.py places them."""
import json
import statistics
from pathlib import Path

HASH_TARGET = 1.1  # our argon2id time / the C reference's (at most)
MEMORY_TARGET_MIB = 64  # peak resident memory of the local server through the whole run (at most)
PACKAGE_TARGET_BYTES = 3_000_000  # every function's zip for arm64 (at most)


def _jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()] if Path(path).exists() else []


def _all(rows, key):
    return [v for row in rows for v in row.get(key) or []]


def hashing(raw):
    """Ours, RustCrypto's and the C reference's hash times over all alternating rounds."""
    ours, reference = _jsonl(raw / "argon2_ours.jsonl"), _jsonl(raw / "argon2_reference.jsonl")
    if not ours or not reference:
        return None

    def figures(rows, wall, cpu):
        return {"wall_ms_median": statistics.median(_all(rows, wall)), "cpu_ms_mean": statistics.fmean(_all(rows, cpu)),
                "samples": len(_all(rows, wall))}

    summary = {
        "params": {k: ours[0][k] for k in ("memory_kib", "iterations", "parallelism")},
        "ours": {"implementation": ours[0]["implementation"], **figures(ours, "hash_ms", "hash_cpu_ms"),
                 "verify_ms_median": statistics.median(_all(ours, "verify_ms"))},
        "rustcrypto": {"implementation": "RustCrypto argon2 0.5 (same release profile)",
                       **figures(ours, "rustcrypto_hash_ms", "rustcrypto_hash_cpu_ms")},
        "reference": {"implementation": reference[0]["implementation"], **figures(reference, "hash_ms", "hash_cpu_ms")},
        # Both ways: ours accepts the reference's hashes, argon2-cffi and Django accept ours.
        "reference_verified_by_ours": all(r.get("reference_phc_verified") for r in ours),
        "ours_verified_by_reference": [r["ours_verified"] for r in reference if "ours_verified" in r],
    }
    ref = summary["reference"]
    for name in ("ours", "rustcrypto"):
        s = summary[name]
        s["wall_ratio"] = s["wall_ms_median"] / ref["wall_ms_median"]
        s["cpu_ratio"] = s["cpu_ms_mean"] / ref["cpu_ms_mean"]
    return summary


def hashing_section(summary, old_hashers, cores):
    if summary is None:
        return ["(no argon2id figures: argon2-cost or the reference did not run)", ""]
    p = summary["params"]
    params = f"m = {p['memory_kib']} KiB, t = {p['iterations']}, p = {p['parallelism']}"
    ours, ref = summary["ours"], summary["reference"]
    ok = ours["wall_ratio"] <= HASH_TARGET
    verified = summary["ours_verified_by_reference"]
    both_ways = summary["reference_verified_by_ours"] and verified and all(all(v.values()) for v in verified)
    lines = [
        f"Alternating rounds of ours and the C reference, {ours['samples']} hashes each; wall = median, CPU = mean of "
        "the hashing thread's (process's, for Python) CPU time.",
        "",
        "| service | hasher | parameters | wall ms | CPU ms | / C reference (wall) | / C reference (CPU) | target |",
        "|---|---|---|---|---|---|---|---|",
        f"| us | argon2id, {ours['implementation']} | {params} | {ours['wall_ms_median']:.1f} | {ours['cpu_ms_mean']:.1f} "
        f"| **{ours['wall_ratio']:.2f}×** | {ours['cpu_ratio']:.2f}× | {'✅' if ok else '❌'} (≤ {HASH_TARGET}×) |",
    ]
    r = summary["rustcrypto"]
    lines.append(f"| (before) | argon2id, {r['implementation']} | {params} | {r['wall_ms_median']:.1f} | {r['cpu_ms_mean']:.1f} "
                 f"| {r['wall_ratio']:.2f}× | {r['cpu_ratio']:.2f}× | |")
    lines.append(f"| C reference | argon2id, {ref['implementation']} | {params} | {ref['wall_ms_median']:.1f} | "
                 f"{ref['cpu_ms_mean']:.1f} | 1.00× | 1.00× | |")
    if old_hashers:
        pb, a = old_hashers["pbkdf2_sha256"], old_hashers["argon2"]
        lines.append(f"| old (default) | PBKDF2-SHA256 (Django) | {pb['params']['iterations']:,} iterations | "
                     f"{pb['hash_ms_median']:.0f} | {pb['hash_cpu_ms_median']:.0f} | | | |")
        lines.append(f"| old (variant) | argon2id (argon2-cffi) | m = {a['params']['memory_kib']} KiB, t = "
                     f"{a['params']['time_cost']}, p = {a['params']['parallelism']} | {a['hash_ms_median']:.0f} | "
                     f"{a['hash_cpu_ms_median']:.0f} | | | |")
    lines += [
        "",
        f"Hashes verify both ways: {'yes' if both_ways else '**NO**'} (ours accepted the reference's in every round; "
        f"argon2-cffi and Django's `Argon2PasswordHasher` accepted ours: {verified[-1] if verified else 'not run'}). "
        "RustCrypto's tag equalled ours in every run.",
        "",
    ]
    if old_hashers:
        lines += [f"Login and registration each compute one hash, so their rate is bounded by about cores × 1000 / CPU ms "
                  f"per hash: ≈ {cores * 1000 / ours['cpu_ms_mean']:.0f}/s for us and ≈ "
                  f"{cores * 1000 / old_hashers['pbkdf2_sha256']['hash_cpu_ms_median']:.1f}/s for the old service's "
                  f"PBKDF2 on {cores} cores.", ""]
    return lines


def memory_verdict(memory):
    peak_mib = memory["new_peak_rss_kib"] / 1024
    return peak_mib, f"{'✅' if peak_mib <= MEMORY_TARGET_MIB else '❌'} (≤ {MEMORY_TARGET_MIB} MiB)"


def package_section(raw):
    path = raw / "package_sizes.json"
    if not path.exists():
        return []
    sizes = json.loads(path.read_text())
    lines = ["### Lambda packages (arm64, zipped, as deployed)", "",
             "`scripts/build-lambdas`: `cargo lambda build --release --arm64` of each function crate with its own "
             "features, zipped.", "",
             "| function | binary | zip | target |", "|---|---|---|---|"]
    for name, s in sorted(sizes.items(), key=lambda kv: -kv[1]["zip_bytes"]):
        ok = s["zip_bytes"] <= PACKAGE_TARGET_BYTES
        lines.append(f"| {name} | {s['binary_bytes'] / 1e6:.2f} MB | **{s['zip_bytes'] / 1e6:.2f} MB** | "
                     f"{'✅' if ok else '❌'} (≤ {PACKAGE_TARGET_BYTES / 1e6:.0f} MB) |")
    return lines + [""]


def cold_start_chart(cold, path, title):
    """Init and first answer per function in milliseconds (DynamoDB mode), hello-lambda first."""
    import matplotlib.pyplot as plt

    rows = [f for f in (cold.get("dynamodb") or {}).get("functions", []) if "init_ms_median" in f]
    if not rows:
        return False
    names = [f["function"] for f in rows]
    init = [f["init_ms_median"] for f in rows]
    answer = [f["answer_ms_median"] for f in rows]
    hello = init[0]
    fig, ax = plt.subplots(figsize=(12, 5))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], init, width=0.4, label="init (spawn → first /next)", color="tab:blue")
    ax.bar([x + 0.2 for x in xs], answer, width=0.4, label="first answer", color="tab:orange", alpha=0.7)
    ax.axhline(hello * 1.5, color="black", linestyle="dashed", label=f"1.5 × hello's init ({hello * 1.5:.2f} ms)")
    for x, v in zip(xs, init):
        ax.annotate(f"{v:.1f}\n{v / hello:.1f}×", (x - 0.2, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs), names, rotation=60, fontsize=8, ha="right")
    ax.set_ylabel("ms (median)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True
