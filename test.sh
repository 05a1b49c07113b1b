#!/usr/bin/env bash
# Runs every test. On a fresh Debian machine it first installs what the tests use (redis-server, docker-compose,
# prometheus), when it can. Tests whose tools are missing skip, unless LEGATE_REQUIRE_REDIS=1 (CI) makes them fail.
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1

# Installs a Debian package when its command is missing and this user can (root, or sudo); otherwise says which
# tests will skip. apt's index is refreshed only when an install fails without it.
install_for_tests() { # command, package, what needs it
  local command="$1" package="$2" purpose="$3" sudo=()
  command -v "$command" >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null && sudo -n true 2>/dev/null && sudo=(sudo) || sudo=(none)
  fi
  if [ "${sudo[0]:-}" = none ] || ! command -v apt-get >/dev/null; then
    echo "$command not found and cannot be installed here: $purpose will skip." >&2
    return 0
  fi
  echo "Installing $package for $purpose..."
  local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package")
  "${install[@]}" >/dev/null 2>&1 || { "${sudo[@]}" apt-get update -qq >/dev/null && "${install[@]}" >/dev/null; }
}

install_for_tests redis-server redis-server "the Redis tests"
# docker-compose validates docker-compose.yml offline; helm comes from npm (deploy/tools/get-helm.sh, run by the tests).
install_for_tests docker-compose docker-compose "the deploy checks"
# statsink's tests scrape it with a real Prometheus and lint its output with promtool (both in Debian's 'prometheus').
install_for_tests prometheus prometheus "the Prometheus tests"

dotnet build Services.sln -nologo -clp:ErrorsOnly

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
dotnet test --solution Services.sln --no-build 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# Failed tests again at the end, each with the first lines of its message: a run's log is long (services under test log
# to the console) and CI shows only its tail.
awk '/^failed /{n=14; print "---"} n>0 {print; n--}' "$log" | sed -n '1,200p' | { grep . && echo "---"; } || true
# One plain summary line over all test assemblies.
awk '/^  total:/{t=$2} /^  failed:/{f=$2} /^  succeeded:/{p=$2} /^  skipped:/{s=$2}
     END { if (t != "") printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
