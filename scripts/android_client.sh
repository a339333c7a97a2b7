#!/usr/bin/env bash
# The app's side, compiled and run: builds examples/android-client (Kotlin + OkHttp, no Android
# SDK) with what Debian packages (kotlin 1.3, OkHttp 3, Android's org.json), starts the local
# server with 2-second access tokens and runs the client's scenario against it: parallel requests
# after expiry share one refresh, a lost refresh answer is retried inside the grace window,
# 429/5xx/network failures keep the tokens, a session ended on the server calls onSessionEnded()
# once. The jar is cached under .tmp/android-client/, keyed on the sources and the compiler.
#
# LOCAL_SERVER_BIN: the server binary (target/debug/local-server, built by scripts/test).
set -euo pipefail
cd "$(dirname "$0")/.."
server_bin=${LOCAL_SERVER_BIN:-target/debug/local-server}
[ -x "$server_bin" ] || { echo "no local server at $server_bin (cargo build -p local-server)"; exit 1; }

# --- Debian's packages, installed once (CI runs as root on a fresh machine)
jars=/usr/share/java
need=()
command -v kotlinc >/dev/null || need+=(kotlin)
[ -f "$jars/okhttp.jar" ] || need+=(libokhttp-java)
[ -f "$jars/com.android.json.jar" ] || need+=(libandroid-json-java)
if [ ${#need[@]} -gt 0 ]; then
  echo "==> apt-get install ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
classpath="$jars/okhttp.jar:$jars/okio.jar:$jars/com.android.json.jar"

# --- compile, unless this exact source and compiler were compiled before
mapfile -t sources < <(find examples/android-client/src examples/android-client/demo -name '*.kt' | sort)
# (the packages' versions stand for the compiler's: `kotlinc -version` takes seconds)
versions=$(dpkg-query -W -f='${Package} ${Version}\n' kotlin libokhttp-java libandroid-json-java 2>/dev/null || true)
key=$( { cat "${sources[@]}"; echo "$versions"; } | sha256sum | cut -c1-16)
out=.tmp/android-client
jar="$out/client-$key.jar"
if [ ! -f "$jar" ]; then
  echo "==> kotlinc examples/android-client (${#sources[@]} files)"
  mkdir -p "$out"
  rm -f "$out"/client-*.jar
  kotlinc -nowarn "${sources[@]}" -cp "$classpath" -d "$jar.tmp.jar" 2>&1 | { grep -v 'Xverify' || true; }
  [ -f "$jar.tmp.jar" ] || { echo "kotlinc failed"; exit 1; }
  mv "$jar.tmp.jar" "$jar"
fi

# --- the local server: fresh data, 2 s access tokens, one JSON log line per request
run="$out/run"
rm -rf "$run"
mkdir -p "$run"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -u JWT_SECRET -u STORAGE -u MAIL_BACKEND -u MEDIA_BUCKET -u MEDIA_DIR -u MEDIA_BASE_URL -u RUST_LOG \
  BIND="127.0.0.1:$port" DATA_DIR="$run/data" LOG_FORMAT=json RUST_LOG=info \
  ACCESS_TOKEN_LIFETIME=2 REFRESH_REUSE_GRACE=10 \
  "$server_bin" > "$run/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { echo "local-server died:"; cat "$run/server.log"; exit 1; }
  sleep 0.1
done

echo "==> android client scenario against 127.0.0.1:$port"
timeout 180 java -cp "$jar:$classpath:$jars/kotlin-stdlib.jar" accounts.demo.ScenarioKt \
  "http://127.0.0.1:$port" "$run/server.log"
