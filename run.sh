#!/usr/bin/env bash
# Runs Legate on this machine: `legate up`, built first (Release). With no argument it renders the bundled sample
# gateway file; `./run.sh my-gateway.yaml [-o DIR]` renders yours. The three services (authz, ratelimit, statsink)
# run on 127.0.0.1 with their embedded defaults (no Redis, no Docker); it prints their ports and the `envoy -c ...`
# command that starts Envoy against the rendered configuration. Ctrl+C stops them all (each drains first).
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1

if ! command -v dotnet >/dev/null; then
  echo "run.sh: the .NET 10 SDK is required (https://dot.net)." >&2
  exit 1
fi

echo "Building legate (Release)..."
dotnet build gateway -c Release -nologo -v quiet -clp:ErrorsOnly >/dev/null || { dotnet build gateway -c Release -nologo -clp:ErrorsOnly; exit 1; }
exec dotnet gateway/bin/Release/net10.0/legate.dll up "$@"
