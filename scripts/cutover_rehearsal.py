#!/usr/bin/env python3
"""The cutover rehearsal (issue 14; the runbook in docs/operations.md, "Cutover"), against the
real old service, on the embedded store and on DynamoDB + S3 (moto at DYNAMODB_ENDPOINT):

  1. the old service (a copy of ../shared/peer under .tmp/cutover, its venv installed from PyPI
     on first use) starts on a fresh database;
  2. users register and log in there, and the rehearsal holds their tokens as the app would; one
     refreshes (its first refresh token is blacklisted by the rotation), one logs out, one
     uploads an avatar;
  3. `manage.py dumpdata accounts.User token_blacklist`, and the old service stops;
  4. `import-users --dry-run --media-from <MEDIA_ROOT>`, then the import itself;
  5. the new local server starts with LEGACY_JWT_SECRET (the old SECRET_KEY) and
     LEGACY_TOKENS_UNTIL;
  6. the held refresh tokens refresh (a new session, on both refresh routes), a held access token
     reads the profile, the logged-out and the rotated refresh tokens are refused, the avatar's
     old URL path resolves to the same bytes, and every old password logs in.

Each step is timed; the table goes to stdout and .tmp/cutover/timings.md. Standard library only.
Environment: LOCAL_SERVER_BIN, IMPORT_USERS_BIN (default target/debug/...), DYNAMODB_ENDPOINT
and S3_ENDPOINT (scripts/test sets them), CUTOVER_STORES (default "sqlite dynamodb").
"""

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_SRC = os.path.join(ROOT, "..", "shared", "peer")
WORK = os.path.join(ROOT, ".tmp", "cutover")
PEER = os.path.join(WORK, "peer")
# The old service's Django SECRET_KEY in this rehearsal: its tokens' HS256 key.
OLD_SECRET = "cutover-rehearsal-django-secret-key-0123456789-abcdefghijklmnop"
NEW_SECRET = "cutover-rehearsal-new-service-key-" + "n" * 32
# The old service's SIMPLE_JWT REFRESH_TOKEN_LIFETIME (refsite/settings.py).
OLD_REFRESH_LIFETIME = 7 * 24 * 3600
USERS = [  # (username, password, e-mail)
    ("15313988692", "Tangerine-Kite-42", "ada@example.com"),
    ("bob_leaves", "Quiet-Harbor-19", "bob@example.com"),
    ("carol", "Argon-Lantern-77", ""),
]
TIMINGS = []


def step(store, name):
    """Times the block it decorates: `with step(store, "...")`."""

    class Timer:
        def __enter__(self):
            self.start = time.monotonic()
            print(f"==> [{store}] {name}", flush=True)

        def __exit__(self, kind, *_):
            if kind is None:
                TIMINGS.append((store, name, time.monotonic() - self.start))

    return Timer()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(base, method, path, body=None, token=None, raw=None, content_type=None):
    """(status, parsed JSON or bytes) of one request."""
    headers = {}
    data = None
    if body is not None:
        data, headers["content-type"] = json.dumps(body).encode(), "application/json"
    if raw is not None:
        data, headers["content-type"] = raw, content_type
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, payload = e.code, e.read()
    try:
        return status, json.loads(payload or b"null")
    except ValueError:
        return status, payload


def expect(what, got, status):
    if got[0] != status:
        raise AssertionError(f"{what}: {got[0]} {got[1]!r}, expected {status}")
    print(f"    ok: {what}")
    return got[1]


def wait_for(base, process, log):
    for _ in range(600):
        if process.poll() is not None:
            sys.exit(f"the server stopped ({process.returncode}):\n{open(log).read()}")
        try:
            urllib.request.urlopen(base + "/api/auth/user/", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # answering (401)
        except OSError:
            time.sleep(0.1)
    sys.exit(f"no answer from {base}:\n{open(log).read()}")


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def png():
    """A 2x2 RGB PNG (the old service's ImageField wants a real picture)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + b"\xff\x40\x20" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def multipart(field, filename, content, content_type):
    boundary = "cutover" + uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def install_old_service():
    """A writable copy of the old service (read-only at ../shared/peer) with its venv."""
    os.makedirs(PEER, exist_ok=True)
    for entry in os.listdir(PEER):
        if entry != "venv":
            path = os.path.join(PEER, entry)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
    skip = {"./venv", "./db.sqlite3", "./bench/results", "./media", "./mail"}
    for dirpath, dirnames, filenames in os.walk(PEER_SRC):
        rel = os.path.relpath(dirpath, PEER_SRC)
        dirnames[:] = [d for d in dirnames if "./" + os.path.normpath(os.path.join(rel, d)) not in skip and d != "__pycache__"]
        os.makedirs(os.path.join(PEER, rel), exist_ok=True)
        for name in filenames:
            if "./" + os.path.normpath(os.path.join(rel, name)) in skip:
                continue
            target = os.path.join(PEER, rel, name)
            shutil.copyfile(os.path.join(dirpath, name), target)
            os.chmod(target, 0o755 if os.access(os.path.join(dirpath, name), os.X_OK) else 0o644)
    python = os.path.join(PEER, "venv", "bin", "python")
    stamp = os.path.join(PEER, "venv", ".requirements")
    requirements = open(os.path.join(PEER, "requirements.txt")).read()
    if not os.path.exists(python) or not os.path.exists(stamp) or open(stamp).read() != requirements:
        subprocess.run([sys.executable, "-m", "venv", os.path.join(PEER, "venv")], check=True)
        subprocess.run([os.path.join(PEER, "venv", "bin", "pip"), "install", "--quiet", "--disable-pip-version-check",
                        "-r", os.path.join(PEER, "requirements.txt")], check=True)
        open(stamp, "w").write(requirements)


def old_env(work):
    return dict(os.environ, DJANGO_SECRET_KEY=OLD_SECRET, PEER_DB=os.path.join(work, "old.sqlite3"),
                PEER_MEDIA_ROOT=os.path.join(work, "old-media"), EMAIL_FILE_PATH=os.path.join(work, "old-mail"),
                DJANGO_SETTINGS_MODULE="refsite.settings")


def new_env(store, work):
    """The new service's environment on `store` (the import tool reads the same)."""
    env = dict(os.environ, RUST_LOG="warn", JWT_SECRET=NEW_SECRET, DATA_DIR=os.path.join(work, "new-data"))
    for name in ("STORAGE", "MEDIA_BUCKET", "JWT_SECRET_ID", "LEGACY_JWT_SECRET", "LEGACY_JWT_SECRET_ID",
                 "LEGACY_TOKENS_UNTIL", "MEDIA_BASE_URL"):
        env.pop(name, None)
    if store == "dynamodb":
        endpoint = os.environ.get("DYNAMODB_ENDPOINT") or sys.exit("DYNAMODB_ENDPOINT is not set (scripts/test starts moto)")
        s3 = os.environ.get("S3_ENDPOINT") or endpoint
        prefix = f"cutover{uuid.uuid4().hex[:12]}"
        env.update(STORAGE="dynamodb", DYNAMODB_ENDPOINT=endpoint, S3_ENDPOINT=s3,
                   USERS_TABLE=f"{prefix}-users", SESSIONS_TABLE=f"{prefix}-sessions",
                   BLACKLIST_TABLE=f"{prefix}-blacklist", THROTTLE_TABLE=f"{prefix}-throttle",
                   MEDIA_BUCKET=prefix, AWS_ACCESS_KEY_ID=env.get("AWS_ACCESS_KEY_ID", "test"),
                   AWS_SECRET_ACCESS_KEY=env.get("AWS_SECRET_ACCESS_KEY", "test"),
                   AWS_REGION=env.get("AWS_REGION", "us-east-1"))
    return env


def rehearse(store, local_server, import_users):
    work = os.path.join(WORK, store)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    started = time.monotonic()

    # 1-2. The old service, used as the app uses it.
    with step(store, "old service: start (migrate, gunicorn)"):
        port = free_port()
        old = f"http://127.0.0.1:{port}"
        log = os.path.join(work, "old-service.log")
        env = dict(old_env(work), PORT=str(port), WORKERS="2")
        old_process = subprocess.Popen([os.path.join(PEER, "run.sh")], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        wait_for(old, old_process, log)
    held = {}
    try:
        with step(store, "old service: register, log in, refresh, log out, upload an avatar"):
            for username, password, email in USERS:
                registration = {"username": username, "password1": password, "password2": password}
                if email:
                    registration["email"] = email
                expect(f"register {username} (old)", request(old, "POST", "/api/auth/registration/", registration), 201)
                held[username] = expect(f"log in {username} (old)", request(old, "POST", "/api/auth/login/", {
                    "username": username, "password": password}), 200)
            ada = USERS[0][0]
            held["ada rotated"] = held[ada]["refresh"]
            pair = expect("refresh (old): rotation blacklists the first refresh token",
                          request(old, "POST", "/api/auth/refresh/", {"refresh": held[ada]["refresh"]}), 200)
            held[ada] = dict(held[ada], **pair)
            expect("log out bob (old)", request(old, "POST", "/api/auth/logout/",
                                                {"refresh": held["bob_leaves"]["refresh"]}, held["bob_leaves"]["access"]), 200)
            picture = png()
            body, content_type = multipart("avatar", "pixel.png", picture, "image/png")
            profile = expect("carol uploads an avatar (old)", request(old, "PATCH", "/api/accounts/profile/", raw=body,
                                                                     content_type=content_type, token=held["carol"]["access"]), 200)
            avatar_path = urllib.parse.urlparse(profile["avatar"]).path
            old_bytes = expect("the avatar at its old URL (old)", request(old, "GET", avatar_path), 200)
        # 3. The export.
        with step(store, "dumpdata accounts.User token_blacklist"):
            export = os.path.join(work, "export.json")
            subprocess.run([os.path.join(PEER, "venv", "bin", "python"), "manage.py", "dumpdata", "accounts.User",
                            "token_blacklist", "--indent", "1", "-o", export],
                           cwd=os.path.join(PEER, "refsite"), env=old_env(work), check=True)
    finally:
        stop(old_process)

    # 4. The import, dry run first.
    env = new_env(store, work)
    media_root = os.path.join(work, "old-media")
    if store == "dynamodb":
        with step(store, "DynamoDB tables and the S3 bucket (the stack's, in AWS)"):
            subprocess.run([local_server, "--create-tables"], env=env, check=True)
            bucket = urllib.request.Request(f"{env['S3_ENDPOINT']}/{env['MEDIA_BUCKET']}", method="PUT")
            urllib.request.urlopen(bucket, timeout=30).read()
    with step(store, "import-users --dry-run --media-from"):
        out = subprocess.run([import_users, "--dry-run", "--media-from", media_root, export], env=env,
                             capture_output=True, text=True)
        print(out.stdout + out.stderr)
        assert out.returncode == 0 and "dry run: nothing was written" in out.stdout, out.stdout
    with step(store, "import-users --media-from"):
        out = subprocess.run([import_users, "--media-from", media_root, export], env=env, capture_output=True, text=True)
        print(out.stdout + out.stderr)
        assert out.returncode == 0, out.stdout + out.stderr
        for line in ["imported: 3\n", "blacklisted tokens imported: 2\n", "avatars copied: 1\n", "avatars missing: 0\n"]:
            assert line in out.stdout, f"{line!r} in {out.stdout}"

    # 5. The new service with the old service's key.
    with step(store, "new local server: start with LEGACY_JWT_SECRET"):
        port = free_port()
        new = f"http://127.0.0.1:{port}"
        until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + OLD_REFRESH_LIFETIME))
        server_env = dict(env, BIND=f"127.0.0.1:{port}", LEGACY_JWT_SECRET=OLD_SECRET, LEGACY_TOKENS_UNTIL=until)
        log = os.path.join(work, "new-server.log")
        new_process = subprocess.Popen([local_server], env=server_env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
        wait_for(new, new_process, log)
    try:
        # 6. What the app holds keeps working; what the old service ended stays ended.
        with step(store, "checks on the new service"):
            ada, carol = held[USERS[0][0]], held["carol"]
            me = expect("ada's held access token reads the profile", request(new, "GET", "/api/accounts/profile/", token=ada["access"]), 200)
            assert me["username"] == USERS[0][0], me
            pair = expect("ada's held refresh token refreshes: a new session",
                          request(new, "POST", "/api/auth/refresh/", {"refresh": ada["refresh"]}), 200)
            claims = json.loads(base64.urlsafe_b64decode(pair["access"].split(".")[1] + "=="))
            assert claims.get("sid"), f"an ordinary token of this service: {claims}"
            expect("the new access token reads the profile", request(new, "GET", "/api/auth/user/", token=pair["access"]), 200)
            again = expect("the same refresh token again, inside the grace window: the same pair",
                           request(new, "POST", "/api/auth/token/refresh/", {"refresh": ada["refresh"]}), 200)
            assert again["refresh"] == pair["refresh"], (again, pair)
            expect("ada's refresh token of before the old rotation is refused",
                   request(new, "POST", "/api/auth/refresh/", {"refresh": held["ada rotated"]}), 401)
            refused = expect("bob's logged-out refresh token is refused",
                             request(new, "POST", "/api/auth/refresh/", {"refresh": held["bob_leaves"]["refresh"]}), 401)
            assert refused["detail"] == "Token is blacklisted", refused
            expect("carol's held refresh token refreshes on token/refresh",
                   request(new, "POST", "/api/auth/token/refresh/", {"refresh": carol["refresh"]}), 200)
            profile = expect("carol's held access token reads her profile",
                             request(new, "GET", "/api/accounts/profile/", token=carol["access"]), 200)
            assert urllib.parse.urlparse(profile["avatar"]).path == avatar_path, (profile, avatar_path)
            new_bytes = expect("the avatar's old URL path resolves on the new server", request(new, "GET", avatar_path), 200)
            assert new_bytes == old_bytes, "the same file"
            for username, password, _ in USERS:
                expect(f"{username} logs in with the old password",
                       request(new, "POST", "/api/auth/login/", {"username": username, "password": password}), 200)
            expect("ada logs out with the new pair", request(new, "POST", "/api/auth/logout/", {"refresh": pair["refresh"]}), 200)
    finally:
        stop(new_process)
    TIMINGS.append((store, "whole rehearsal", time.monotonic() - started))


def main():
    local_server = os.environ.get("LOCAL_SERVER_BIN", os.path.join(ROOT, "target", "debug", "local-server"))
    import_users = os.environ.get("IMPORT_USERS_BIN", os.path.join(ROOT, "target", "debug", "import-users"))
    for binary in (local_server, import_users):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} is missing: cargo build -p local-server -p import-users")
    total = time.monotonic()
    with step("both", "old service: copy ../shared/peer, install its venv (first run only)"):
        install_old_service()
    for store in os.environ.get("CUTOVER_STORES", "sqlite dynamodb").split():
        rehearse(store, local_server, import_users)
    TIMINGS.append(("both", "the rehearsal, all steps", time.monotonic() - total))
    table = "| store | step | seconds |\n|---|---|---|\n" + "".join(f"| {s} | {n} | {t:.1f} |\n" for s, n, t in TIMINGS)
    print(table)
    with open(os.path.join(WORK, "timings.md"), "w") as f:
        f.write(table)


if __name__ == "__main__":
    main()
