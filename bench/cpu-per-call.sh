#!/usr/bin/env bash
# CPU time a server spends per call: warm it up with h2load, then send N calls and read the process's CPU ticks
# before and after (/proc/PID/stat). Less sensitive to a busy machine than req/s: time the server does not get is
# not counted. Pins the server to core 0 and h2load to core 1, like run.sh. Then the same per thread name (the JIT's
# background thread, thread-pool workers, ...) with context switches per call.
#
# usage: bench/cpu-per-call.sh DLL FRAME GRPC_PATH [N=1000000] [WARMUP_S=90] [-- service args...]
#   bench/cpu-per-call.sh bench/Noop/bin/Release/net10.0/legate-bench-noop.dll bench/out/ratelimit-1.frame \
#     /envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit
#   bench/cpu-per-call.sh ratelimit/bin/Release/net10.0/legate-ratelimit.dll bench/out/ratelimit-1.frame \
#     /envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit 1000000 90 -- --Legate:Rules:ratelimit:Path=$PWD/bench/rules/ratelimit/within.yaml
# Frames come from an earlier bench/run.sh scenario (bench/out/*.frame). Port 20071 (and 20072 for a service's HTTP).
# ALSO_PID=PID (e.g. a redis-server's) also counts that process's CPU over the same calls.
set -euo pipefail
DLL=$1 FRAME=$2 URLPATH=$3
N=${4:-1000000} WARM=${5:-90}
shift $(($# < 5 ? $# : 5))
[[ ${1:-} == -- ]] && shift
if [[ $(basename "$DLL") == legate-bench-noop.dll ]]; then ARGS=(--port 20071); else ARGS=(--Legate:GrpcPort=20071 --Legate:HttpPort=20072 --Logging:LogLevel:Default=Warning); fi
LOG=$(mktemp)
DOTNET_gcServer=0 taskset -c 0 dotnet "$DLL" "${ARGS[@]}" "$@" >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; while kill -0 $PID 2>/dev/null; do sleep 0.2; done; rm -f "$LOG" "$LOG".threads*' EXIT
for _ in $(seq 50); do curl -s --http2-prior-knowledge -o /dev/null "http://127.0.0.1:20071/" 2>/dev/null && break; sleep 0.2; done
sleep 2
H=(taskset -c 1 h2load -c 4 -m 32 -t 1 -H 'content-type: application/grpc' -H 'te: trailers' -d "$FRAME" "http://127.0.0.1:20071$URLPATH")
"${H[@]}" -D "$WARM" >/dev/null
ticks() { awk '{print $14+$15}' "/proc/$PID/stat"; }
# Per thread name (".NET TP Worker", ".NET Tiered Com"...): CPU ticks and context switches. The comm field in stat may
# hold spaces, so the fields are counted after its closing parenthesis.
threads() {
    for t in /proc/"$PID"/task/*; do
        printf '%s\t%s\t%s\n' "$(cat "$t/comm")" "$(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')" \
            "$(awk '/^voluntary_ctxt_switches|^nonvoluntary_ctxt_switches/ {s += $2} END {print s}' "$t/status")"
    done 2>/dev/null | awk -F'\t' '{c[$1] += $2; x[$1] += $3} END {for (k in c) print k "\t" c[k] "\t" x[k]}' | sort
}
threads >"$LOG.threads0"
also() { [[ -z ${ALSO_PID:-} ]] || awk '{print $14+$15}' "/proc/$ALSO_PID/stat"; }
a0=$(also); t0=$(ticks); s0=$(date +%s.%N)
OUT=$("${H[@]}" -n "$N")
t1=$(ticks); s1=$(date +%s.%N); a1=$(also)
threads >"$LOG.threads1"
ok=$(grep -oE '[0-9]+ succeeded' <<<"$OUT" | cut -d' ' -f1)
((ok > 0)) || { echo "no successful calls; server log: $LOG" >&2; cat "$LOG" >&2; exit 1; }
awk -v t="$((t1 - t0))" -v n="$ok" -v w="$(echo "$s1 - $s0" | bc)" -v hz="$(getconf CLK_TCK)" \
    'BEGIN{printf "cpu_us_per_call %.2f  calls %d  wall %.1fs  calls/s %.0f  cpu %.0f%%\n", t/hz*1e6/n, n, w, n/w, t/hz/w*100}'
[[ -z ${ALSO_PID:-} ]] || awk -v t="$((a1 - a0))" -v n="$ok" -v hz="$(getconf CLK_TCK)" -v p="$ALSO_PID" \
    'BEGIN{printf "  pid %s (ALSO_PID) cpu_us_per_call %.2f\n", p, t/hz*1e6/n}'
# Threads that ended during the run are missing here: a sum well below the total means thread churn.
join -t $'\t' "$LOG.threads0" "$LOG.threads1" | awk -F'\t' -v n="$ok" -v hz="$(getconf CLK_TCK)" \
    '{d = $4 - $2; x = $5 - $3; if (d > 0 || x > n / 100) printf "  %-18s cpu_us_per_call %6.2f  switches_per_call %.3f\n", $1, d / hz * 1e6 / n, x / n}'
