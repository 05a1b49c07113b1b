#!/usr/bin/env bash
# Runs Legate's three services on this machine with their embedded defaults: no Redis, no Docker, no config to
# write. Builds them (Release), starts authz, ratelimit and statsink on 127.0.0.1, prints where each listens, and
# stops them all with Ctrl+C (each drains first, as on SIGTERM in a container).
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1

if ! command -v dotnet >/dev/null; then
  echo "run.sh: the .NET 10 SDK is required (https://dot.net)." >&2
  exit 1
fi

bind="${LEGATE_BIND:-127.0.0.1}"
# name | folder | assembly | gRPC port | HTTP port (the defaults in each service's appsettings.json)
services=(
  "authz|authz|legate-authz|9001|9011"
  "ratelimit|ratelimit|legate-ratelimit|9002|9012"
  "statsink|statsink|legate-statsink|9003|9013"
)

echo "Building the services (Release)..."
for entry in "${services[@]}"; do
  IFS='|' read -r _ folder _ _ _ <<<"$entry"
  dotnet build "$folder" -c Release -nologo -v quiet -clp:ErrorsOnly >/dev/null || { dotnet build "$folder" -c Release -nologo -clp:ErrorsOnly; exit 1; }
done

pids=()
stop() {
  trap - INT TERM EXIT
  if ((${#pids[@]})); then
    echo
    echo "Stopping (each service drains, then exits)..."
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop INT TERM EXIT

for entry in "${services[@]}"; do
  IFS='|' read -r name folder assembly grpc http <<<"$entry"
  dir="$folder/bin/Release/net10.0"
  (cd "$dir" && exec dotnet "$assembly.dll" --Legate:BindAddress="$bind" --Legate:LogFormat=text --Legate:DrainDelay=00:00:01) \
    > >(sed -u "s/^/[$name] /") 2>&1 &
  pids+=($!)
done

ready() { # port
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$1/readyz" 2>/dev/null
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -1 <&3 | grep -q ' 200 ') 2>/dev/null
  fi
}

for entry in "${services[@]}"; do
  IFS='|' read -r name _ _ _ http <<<"$entry"
  for _ in $(seq 1 120); do
    ready "$http" && break
    sleep 0.5
  done
  ready "$http" || { echo "run.sh: $name did not become ready; see its log lines above." >&2; exit 1; }
done

cat <<TABLE

Legate is running (embedded defaults: in-memory state, no Redis, no Docker).

  service     gRPC (Envoy calls this)         HTTP (/metrics, /healthz, /readyz)
  authz       $bind:9001   envoy.service.auth.v3.Authorization/Check            http://$bind:9011
  ratelimit   $bind:9002   envoy.service.ratelimit.v3.RateLimitService/...      http://$bind:9012
  statsink    $bind:9003   envoy.service.metrics.v3.MetricsService/...          http://$bind:9013

Press Ctrl+C to stop.
TABLE
wait "${pids[@]}"
