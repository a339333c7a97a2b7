"""The C reference of argon2id (argon2-cffi, the optimised build the old service uses) at the
service's parameters, timed on this machine, as one JSON line. Run with the old service's venv:
    venv/bin/python argon2_reference.py RUNS
bench/run alternates it with `argon2-cost` (ours) so both see the same load. With OURS_PHC and
OURS_PASSWORD set (a hash of ours), it also checks that argon2-cffi and Django's Argon2 hasher
accept it; its own `example_phc` goes the other way (argon2-cost verifies it).
"""
import importlib.metadata
import json
import os
import statistics
import sys
import time

import argon2
from argon2.low_level import Type, hash_secret_raw

MEMORY_KIB, ITERATIONS, PARALLELISM = 19456, 2, 1
runs = int(sys.argv[1])

wall, cpu = [], []
hash_secret_raw(b"warm-up", os.urandom(16), ITERATIONS, MEMORY_KIB, PARALLELISM, 32, Type.ID)
for run in range(runs):
    salt = os.urandom(16)
    started, started_cpu = time.perf_counter(), time.process_time()
    hash_secret_raw(f"bench-password-{run}".encode(), salt, ITERATIONS, MEMORY_KIB, PARALLELISM, 32, Type.ID)
    wall.append((time.perf_counter() - started) * 1000)
    # CPU of all threads (p = 1 runs on this one): what other load disturbs least.
    cpu.append((time.process_time() - started_cpu) * 1000)

hasher = argon2.PasswordHasher(time_cost=ITERATIONS, memory_cost=MEMORY_KIB, parallelism=PARALLELISM)
result = {
    "implementation": f"argon2-cffi {importlib.metadata.version('argon2-cffi')} (C reference, {'SSE2' if 'x86' in os.uname().machine else 'portable'} build)",
    "hash_ms": wall,
    "hash_cpu_ms": cpu,
    "example_password": "reference-password",
    "example_phc": hasher.hash("reference-password"),
    "median_ms": statistics.median(wall),
}
ours, ours_password = os.environ.get("OURS_PHC"), os.environ.get("OURS_PASSWORD")
if ours and ours_password:
    try:
        cffi_ok = hasher.verify(ours, ours_password)
    except argon2.exceptions.VerificationError:
        cffi_ok = False
    # Django's hasher (imported users, the old service): its encoding is "argon2" + the PHC string.
    from django.conf import settings

    settings.configure(PASSWORD_HASHERS=["django.contrib.auth.hashers.Argon2PasswordHasher"])
    from django.contrib.auth.hashers import Argon2PasswordHasher

    django_ok = Argon2PasswordHasher().verify(ours_password, "argon2" + ours)
    result["ours_verified"] = {"argon2-cffi": cffi_ok, "django": django_ok}
print(json.dumps(result))
