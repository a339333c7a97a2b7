"""The old service's password hashers, timed on this machine: Django's PBKDF2 (its default) and
Argon2 with the old service's own settings. Run with the old service's venv python:
    venv/bin/python old_hashers.py PEER_DIR RUNS   -> JSON on stdout
"""
import json
import os
import statistics
import sys
import time

peer, runs = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, os.path.join(peer, "refsite"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refsite.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

import django  # noqa: E402

django.setup()

from django.contrib.auth.hashers import Argon2PasswordHasher, PBKDF2PasswordHasher  # noqa: E402

result = {}
for name, hasher in (("pbkdf2_sha256", PBKDF2PasswordHasher()), ("argon2", Argon2PasswordHasher())):
    times, cpu = [], []
    for run in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        encoded = hasher.encode(f"bench-password-{run}", hasher.salt())
        times.append((time.perf_counter() - started) * 1000)
        # CPU time of all threads (argon2-cffi hashes on `parallelism` threads): less load-sensitive.
        cpu.append((time.process_time() - started_cpu) * 1000)
    params = {"iterations": hasher.iterations} if name == "pbkdf2_sha256" else {
        "time_cost": hasher.time_cost, "memory_kib": hasher.memory_cost, "parallelism": hasher.parallelism}
    result[name] = {"params": params, "hash_ms_median": statistics.median(times),
                    "hash_cpu_ms_median": statistics.median(cpu), "runs": runs,
                    "example_prefix": "$".join(encoded.split("$")[:3 if name == "argon2" else 2])}
print(json.dumps(result, indent=2))
