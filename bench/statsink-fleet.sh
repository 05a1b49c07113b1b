#!/usr/bin/env bash
# statsink at fleet scale (bench/run.sh statsink-fleet): starts a Release statsink pinned to core 0 and drives it from
# core 1 with bench/StatSinkLoad: (1) a fleet of Envoys flushing every interval -> statsink's CPU share and memory;
# (2) the same Envoys resending back to back -> peak samples/s; (3) /metrics for the whole fleet -> scrape time.
# Usage: bench/statsink-fleet.sh [--envoys 50] [--stats 5000] [--interval 5] [--duration 60] [--warmup 20]
#                                [--peak-duration 15] [--modes "fleet peak scrape"]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/bench/out"
ENVOYS=50 STATS=5000 INTERVAL=5 DURATION=60 WARMUP=20 PEAK_DURATION=15 MODES="fleet peak scrape"
while (($#)); do
    case "$1" in
        --envoys) ENVOYS="$2" ;; --stats) STATS="$2" ;; --interval) INTERVAL="$2" ;;
        --duration) DURATION="$2" ;; --warmup) WARMUP="$2" ;; --peak-duration) PEAK_DURATION="$2" ;; --modes) MODES="$2" ;;
        *) echo "statsink-fleet.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
GRPC_PORT="${BENCH_GRPC_PORT:-20051}" HTTP_PORT="${BENCH_HTTP_PORT:-20052}"
mkdir -p "$OUT"
if (($(nproc) >= 2)); then PIN_SERVER=(taskset -c 0) PIN_CLIENT=(taskset -c 1); else PIN_SERVER=() PIN_CLIENT=(); fi

echo "building (Release)..."
dotnet build "$ROOT/statsink/Legate.StatSink.csproj" -c Release -v q --nologo >"$OUT/statsink-fleet.build.log" 2>&1
dotnet build "$ROOT/bench/StatSinkLoad/Legate.Bench.StatSink.csproj" -c Release -v q --nologo >>"$OUT/statsink-fleet.build.log" 2>&1
LOAD=(dotnet "$ROOT/bench/StatSinkLoad/bin/Release/net10.0/legate-bench-statsink.dll")

run() { # mode, duration
    local pid
    (cd "$ROOT/statsink/bin/Release/net10.0" && DOTNET_gcServer=0 exec "${PIN_SERVER[@]}" dotnet legate-statsink.dll \
        --Legate:GrpcPort="$GRPC_PORT" --Legate:HttpPort="$HTTP_PORT" --Legate:BindAddress=127.0.0.1 \
        --Legate:DrainDelay=00:00:00 --Logging:LogLevel:Default=Warning) >"$OUT/statsink-fleet.$1.log" 2>&1 &
    pid=$!
    trap 'kill "$pid" 2>/dev/null || true' EXIT
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null && break; sleep 0.2; done
    "${PIN_CLIENT[@]}" "${LOAD[@]}" "$1" --grpc "http://127.0.0.1:$GRPC_PORT" --http "http://127.0.0.1:$HTTP_PORT" --pid "$pid" \
        --envoys "$ENVOYS" --stats "$STATS" --interval "$INTERVAL" --duration "$2" --warmup "$WARMUP" | tee -a "$OUT/statsink-fleet.txt"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    trap - EXIT
}

: >"$OUT/statsink-fleet.txt"
echo "statsink-fleet: $ENVOYS Envoys x $STATS stats, flush every ${INTERVAL}s; pinning: ${PIN_SERVER[*]:-none} / ${PIN_CLIENT[*]:-none}" | tee -a "$OUT/statsink-fleet.txt"
for mode in $MODES; do
    case "$mode" in
        fleet) run fleet "$DURATION" ;;
        peak) run peak "$PEAK_DURATION" ;;
        scrape) run scrape 0 ;;
        *) echo "statsink-fleet.sh: unknown mode $mode" >&2; exit 2 ;;
    esac
done
