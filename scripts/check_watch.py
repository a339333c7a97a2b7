"""`cargo lambda watch` serves the API under its own paths, on the embedded store and on DynamoDB.

Starts `cargo lambda watch` (its routes: [workspace.metadata.lambda.watch.router] in Cargo.toml)
on a free port with a fresh data folder, then registers, logs in, reads and updates the profile
and refreshes through it, as a developer's app would; then again with STORAGE=dynamodb on the
emulator at DYNAMODB_ENDPOINT (fresh tables made by `local-server --create-tables`). Run by
scripts/test after the workspace build, so the functions start without compiling. Exits non-zero
with the watch log on failure.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, token=None, timeout=180):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
            if response.headers.get_content_type() == "text/html":
                return response.status, text.decode()
            return response.status, json.loads(text or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text.decode(errors="replace")


def expect(what, got, status):
    if got[0] != status:
        raise AssertionError(f"{what}: {got[0]} {got[1]!r}, expected {status}")
    return got[1]


def storage_env(storage):
    """The functions' environment: the embedded store in a fresh folder, or fresh DynamoDB tables."""
    env = dict(os.environ, DATA_DIR=tempfile.mkdtemp(prefix="watch-"), RUST_LOG="warn")
    for name in ("STORAGE", "DYNAMODB_ENDPOINT", "MEDIA_BUCKET", "JWT_SECRET"):
        env.pop(name, None)
    if storage == "dynamodb":
        endpoint = os.environ.get("DYNAMODB_ENDPOINT") or sys.exit("DYNAMODB_ENDPOINT is not set (scripts/test starts moto)")
        prefix = f"watch{os.getpid()}{int(time.time())}"
        env.update(
            STORAGE="dynamodb", DYNAMODB_ENDPOINT=endpoint, JWT_SECRET="watch-" + "k" * 32,
            USERS_TABLE=f"{prefix}-users", SESSIONS_TABLE=f"{prefix}-sessions",
            BLACKLIST_TABLE=f"{prefix}-blacklist", THROTTLE_TABLE=f"{prefix}-throttle",
        )
        subprocess.run([os.path.join(ROOT, "target", "debug", "local-server"), "--create-tables"], env=env, check=True)
    return env


def check(storage):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = storage_env(storage)
    log_path = os.path.join(ROOT, ".tmp", f"watch-{storage}.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w") as log:
        watch = subprocess.Popen(
            ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if watch.poll() is not None or time.time() > deadline:
                    raise AssertionError("cargo lambda watch did not start")
                time.sleep(0.5)

        password = "xk29!pLm#q"
        user = {"username": "watcher", "password1": password, "password2": password}
        registered = expect("registration", call(base, "POST", "/api/auth/registration/", user), 201)
        # Both slash forms, as API Gateway routes them.
        tokens = expect("login", call(base, "POST", "/api/auth/login", {"username": "WATCHER", "password": password}), 200)
        access = tokens["access"]
        profile = expect("profile", call(base, "GET", "/api/accounts/profile/", token=access), 200)
        assert profile["username"] == "watcher", profile
        assert profile["id"] == registered["user"]["pk"], (profile, registered)
        updated = expect("profile PATCH", call(base, "PATCH", "/api/accounts/profile", {"nickname": "看门人"}, access), 200)
        assert updated["nickname"] == "看门人", updated
        refreshed = expect("refresh", call(base, "POST", "/api/auth/token/refresh/", {"refresh": tokens["refresh"]}), 200)
        assert refreshed["refresh"] != tokens["refresh"], refreshed
        link = expect("reset link", call(base, "GET", "/password-reset/confirm/1/abc-123/"), 200)
        assert link == {"uid": "1", "token": "abc-123"}, link
        # What no endpoint takes goes to the catch-all function (API Gateway's $default route):
        # the contract's JSON 404 and 405, not the emulator's own 404.
        assert expect("unrouted path", call(base, "GET", "/api/nothing/"), 404) == {"detail": "Not found."}
        assert expect("deeper unrouted path", call(base, "POST", "/api/auth/login/x"), 404) == {"detail": "Not found."}
        assert expect("root", call(base, "GET", "/"), 404) == {"detail": "Not found."}
        assert expect("GET on a POST route", call(base, "GET", "/api/auth/login/"), 405) == {"detail": 'Method "GET" not allowed.'}
        assert expect("DELETE on the profile", call(base, "DELETE", "/api/accounts/profile", token=access), 405) == {"detail": 'Method "DELETE" not allowed.'}
        # Two functions on one path (user-details and account-deletion), and the web page.
        assert "<form" in expect("deletion page", call(base, "GET", "/account/delete"), 200)
        expect("account deletion", call(base, "DELETE", "/api/auth/user/", {"password": password}, access), 204)
        expect("login of the deleted account", call(base, "POST", "/api/auth/login/", {"username": "watcher", "password": password}), 400)
        print(f"cargo lambda watch ({storage}): the API's own paths answer on {base} (log: {os.path.relpath(log_path, ROOT)})")
    except Exception:
        with open(log_path) as log:
            sys.stderr.write(log.read()[-4000:])
        raise
    finally:
        try:
            os.killpg(watch.pid, signal.SIGTERM)
            watch.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(watch.pid, signal.SIGKILL)


if __name__ == "__main__":
    for storage in ("embedded", "dynamodb"):
        check(storage)
