#!/usr/bin/env bash
# Legate benchmark harness: measures one Legate service against the no-op gRPC baseline (bench/Noop) with h2load,
# under the same load, on the same core, and prints the service's throughput and latency as a ratio of the
# baseline's. See bench/README.md for what the numbers mean and why each step is here.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run.sh SCENARIO [--duration S] [--connections C] [--streams M] [--warmup S]

scenarios:
  baseline           the no-op server alone (Check with the authz-check payload)
  authz-check        envoy.service.auth.v3.Authorization/Check            vs baseline
  ratelimit-should   envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit vs baseline
  statsink-stream    envoy.service.metrics.v3.MetricsService/StreamMetrics vs baseline
  all                the three service scenarios, each with its own baseline measurement

options (defaults):  --duration 20  --connections 4  --streams 32  --warmup 60   (seconds; warmup 0 skips it; .NET needs ~40 s of load on one core to finish tiering up)
environment:         BENCH_NOOP_PORT (50050), BENCH_GRPC_PORT (50051), BENCH_HTTP_PORT (50052),
                     BENCH_SERVICE_ARGS  extra arguments for the service, e.g. '--Logging:LogLevel:Default=Warning'
EOF
    exit "${1:-2}"
}

die() { echo "run.sh: $*" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
OUT="$BENCH/out"

DURATION=20 CONNECTIONS=4 STREAMS=32 WARMUP=60
NOOP_PORT="${BENCH_NOOP_PORT:-50050}"
GRPC_PORT="${BENCH_GRPC_PORT:-50051}"
HTTP_PORT="${BENCH_HTTP_PORT:-50052}"
read -r -a SERVICE_ARGS <<<"${BENCH_SERVICE_ARGS:-}"

[[ $# -ge 1 ]] || usage
[[ $1 == -h || $1 == --help ]] && usage 0
SCENARIO="$1"; shift
while (($#)); do
    [[ $# -ge 2 ]] || { [[ $1 == -h || $1 == --help ]] && usage 0; die "$1 needs a value"; }
    case "$1" in
        --duration) DURATION="$2" ;;
        --connections) CONNECTIONS="$2" ;;
        --streams) STREAMS="$2" ;;
        --warmup) WARMUP="$2" ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
    shift 2
done
for v in DURATION CONNECTIONS STREAMS WARMUP NOOP_PORT GRPC_PORT HTTP_PORT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (was '${!v}')"
done
((DURATION > 0 && CONNECTIONS > 0 && STREAMS > 0)) || die "duration, connections and streams must be positive"

case "$SCENARIO" in
    baseline | authz-check | ratelimit-should | statsink-stream) SCENARIOS=("$SCENARIO") ;;
    all) SCENARIOS=(authz-check ratelimit-should statsink-stream) ;;
    *) echo "run.sh: unknown scenario '$SCENARIO'" >&2; usage ;;
esac

# --- tools -----------------------------------------------------------------------------------------------------
need() { # command, how to install it
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found. Install it with: $2"
}
need h2load "sudo apt-get install -y nghttp2-client"
need nghttp "sudo apt-get install -y nghttp2-client"
need protoc "sudo apt-get install -y protobuf-compiler"
need curl "sudo apt-get install -y curl"
need dotnet "the .NET 10 SDK (https://dot.net)"

# protoc needs google/protobuf/*.proto: Debian's protobuf-compiler (libprotobuf-dev) puts them in /usr/include;
# otherwise the copy that ships in the Grpc.Tools NuGet package will do.
PROTO_INCLUDE=/usr/include
if [[ ! -f $PROTO_INCLUDE/google/protobuf/timestamp.proto ]]; then
    PROTO_INCLUDE="$(ls -d "$HOME"/.nuget/packages/grpc.tools/*/build/native/include 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n $PROTO_INCLUDE && -f $PROTO_INCLUDE/google/protobuf/timestamp.proto ]] ||
        die "google/protobuf/*.proto not found in /usr/include nor in ~/.nuget/packages/grpc.tools. Install: sudo apt-get install -y protobuf-compiler libprotobuf-dev (or run 'dotnet restore' once)"
fi
protoc_() { protoc -I "$ROOT/protos" -I "$PROTO_INCLUDE" "$@"; }

# Servers on core 0, h2load on core 1, so the load generator never steals the server's CPU. A process that sees one
# core would run workstation GC anyway; DOTNET_gcServer=0 makes that explicit for both servers, so the Web SDK's
# server-GC default cannot make the comparison unfair on a machine where pinning is off.
if (($(nproc) >= 2)); then
    PIN_SERVER=(taskset -c 0) PIN_CLIENT=(taskset -c 1)
    need taskset "sudo apt-get install -y util-linux"
    PINNING="servers on core 0, h2load on core 1"
else
    PIN_SERVER=() PIN_CLIENT=()
    PINNING="none (nproc=1): servers and h2load share the only core; ratios are still comparable, absolute numbers less so"
fi

# --- scenarios -------------------------------------------------------------------------------------------------
# Sets the globals describing one scenario's call. Baseline uses the authz call.
scenario() {
    case "$1" in
        baseline | authz-check)
            PROJECT=authz/Legate.Authz.csproj DLL=authz/bin/Release/net10.0/legate-authz.dll
            GRPC_SERVICE=envoy.service.auth.v3.Authorization GRPC_METHOD=Check
            PROTO=envoy/service/auth/v3/external_auth.proto
            REQUEST=envoy.service.auth.v3.CheckRequest RESPONSE=envoy.service.auth.v3.CheckResponse
            PAYLOAD=authz-check ;;
        ratelimit-should)
            PROJECT=ratelimit/Legate.RateLimit.csproj DLL=ratelimit/bin/Release/net10.0/legate-ratelimit.dll
            GRPC_SERVICE=envoy.service.ratelimit.v3.RateLimitService GRPC_METHOD=ShouldRateLimit
            PROTO=envoy/service/ratelimit/v3/rls.proto
            REQUEST=envoy.service.ratelimit.v3.RateLimitRequest RESPONSE=envoy.service.ratelimit.v3.RateLimitResponse
            PAYLOAD=ratelimit-should ;;
        statsink-stream)
            PROJECT=statsink/Legate.StatSink.csproj DLL=statsink/bin/Release/net10.0/legate-statsink.dll
            GRPC_SERVICE=envoy.service.metrics.v3.MetricsService GRPC_METHOD=StreamMetrics
            PROTO=envoy/service/metrics/v3/metrics_service.proto
            REQUEST=envoy.service.metrics.v3.StreamMetricsMessage RESPONSE=envoy.service.metrics.v3.StreamMetricsResponse
            PAYLOAD=statsink-stream ;;
    esac
    URL_PATH="/$GRPC_SERVICE/$GRPC_METHOD"
    FRAME="$OUT/$PAYLOAD.frame"
}
NOOP_DLL=bench/Noop/bin/Release/net10.0/legate-bench-noop.dll

# --- build and payloads ----------------------------------------------------------------------------------------
mkdir -p "$OUT"
build() {
    local project="$1"
    echo "build    $project (Release)"
    dotnet build "$ROOT/$project" -c Release -v q --nologo >"$OUT/build.log" 2>&1 ||
        { tail -n 30 "$OUT/build.log" >&2; die "build of $project failed (full log: $OUT/build.log)"; }
}
build bench/Noop/Legate.Bench.Noop.csproj
for s in "${SCENARIOS[@]}"; do
    [[ $s == baseline ]] && continue
    scenario "$s"
    build "$PROJECT"
done

# gRPC's length-prefixed message: one byte "not compressed", then the length as 4 bytes big-endian.
frame() { # payload name, message type, proto file
    local body="$OUT/$1.pb" len
    protoc_ --encode="$2" "$3" <"$BENCH/payloads/$1.txt" >"$body" || die "protoc could not encode bench/payloads/$1.txt as $2"
    len=$(wc -c <"$body")
    {
        printf "$(printf '\\%03o\\%03o\\%03o\\%03o\\%03o' 0 $((len >> 24 & 255)) $((len >> 16 & 255)) $((len >> 8 & 255)) $((len & 255)))"
        cat "$body"
    } >"$OUT/$1.frame"
    echo "payload  bench/payloads/$1.txt -> bench/out/$1.frame ($len bytes + 5)"
}
for s in "${SCENARIOS[@]}"; do
    scenario "$s"
    frame "$PAYLOAD" "$REQUEST" "$PROTO"
done

# --- servers ---------------------------------------------------------------------------------------------------
PIDS=() LOAD_PID=""
cleanup() {
    local pid i
    [[ -z $LOAD_PID ]] || { kill -TERM "$LOAD_PID" 2>/dev/null || true; wait "$LOAD_PID" 2>/dev/null || true; }
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() { # name, dll (relative to the repo), args...; sets STARTED_PID
    local name="$1" dll="$ROOT/$2"; shift 2
    [[ -f $dll ]] || die "$dll is missing (did the build fail?)"
    # Run from the output directory: the content root is the working directory, and the services' appsettings.json
    # (which keeps ASP.NET Core's per-request logs at Warning) is found only there.
    (cd "$(dirname "$dll")" && export DOTNET_gcServer=0 && exec "${PIN_SERVER[@]}" dotnet "$dll" "$@") >"$OUT/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

stop() { # pid
    local pid="$1" i keep=()
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for i in "${PIDS[@]}"; do [[ $i == "$pid" ]] || keep+=("$i"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

wait_ready() { # name, pid, command...
    local name="$1" pid="$2" i; shift 2
    for ((i = 0; i < 300; i++)); do # 60 s
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$OUT/$name.log" >&2; die "$name exited before it was ready (log: bench/out/$name.log)"; }
        sleep 0.2
    done
    die "$name not ready after 60 s (log: bench/out/$name.log)"
}

grpc_call() { # port, nghttp options...
    local port="$1"; shift
    nghttp "$@" -d "$FRAME" -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$port$URL_PATH"
}

# nghttp exits 0 even when it cannot connect: ready means a response status came back.
noop_answers() { grpc_call "$NOOP_PORT" -v 2>&1 | grep -ac "recv (stream_id=[0-9]*) :status: " >/dev/null; }

# h2load counts every HTTP 200 as a success, and a gRPC error is an HTTP 200 whose grpc-status trailer is not 0.
# So before measuring, one verbose call shows the status and the trailer, and its response message decoded.
verify() { # name, port
    local name="$1" port="$2" v="$OUT/$PAYLOAD.$1.verify.txt" r="$OUT/$PAYLOAD.$1.response" status body len
    grpc_call "$port" -v >"$v" 2>&1 || true
    grep -aq "recv (stream_id=[0-9]*) :status: " "$v" || { tail -n 5 "$v" >&2; die "$name: no response from nghttp to $URL_PATH"; }
    echo "verify   $name $URL_PATH"
    grep -aE 'recv \(stream_id=[0-9]+\) (:status|grpc-status|grpc-message):' "$v" | sed -E 's/^.*recv \(stream_id=[0-9]+\) /           /'
    status="$(grep -aoE 'recv \(stream_id=[0-9]+\) grpc-status: [0-9]+' "$v" | tail -n 1 | awk '{print $NF}')"
    [[ -n $status ]] || die "$name: no grpc-status in the response (see bench/out/$PAYLOAD.$name.verify.txt)"
    [[ $status == 0 ]] || die "$name: grpc-status $status, not 0: every h2load 'success' would be a failed call"
    # nghttp -v writes each DATA frame's payload just before its "recv DATA frame <length=N>" line: cut those N bytes out.
    : >"$r"
    while IFS=: read -r offset match; do
        len="${match##*length=}"
        tail -c "+$((offset - len + 1))" "$v" | head -c "$len" >>"$r"
    done < <(grep -aboE '\[ *[0-9.]+\] recv DATA frame <length=[0-9]+' "$v")
    body="$(wc -c <"$r")"
    len="$(head -c 5 "$r" | od -An -tu1 | awk '{print $2 * 16777216 + $3 * 65536 + $4 * 256 + $5}')"
    [[ $body -ge 5 && $((len + 5)) -eq $body ]] || die "$name: could not read the gRPC message out of bench/out/$PAYLOAD.$name.verify.txt"
    echo "           $RESPONSE ($len bytes):"
    if ((len == 0)); then
        echo "             (empty message)"
    else
        tail -c "+6" "$r" | protoc_ --decode="$RESPONSE" "$PROTO" | sed 's/^/             /'
    fi
}

load() { # port, duration, h2load output file, [log file]
    local port="$1" duration="$2" out="$3" log=()
    # h2load appends to an existing log file: start each measurement from an empty one.
    [[ $# -ge 4 ]] && { rm -f "$4"; log=("--log-file=$4"); }
    # In the background and waited for, so that a signal to this script is handled at once, not after the run.
    "${PIN_CLIENT[@]}" h2load -D "$duration" -c "$CONNECTIONS" -m "$STREAMS" -t 1 \
        -H 'content-type: application/grpc' -H 'te: trailers' -d "$FRAME" "${log[@]}" \
        "http://127.0.0.1:$port$URL_PATH" >"$out" 2>&1 &
    LOAD_PID=$!
    wait "$LOAD_PID" || { LOAD_PID=""; cat "$out" >&2; die "h2load failed"; }
    LOAD_PID=""
}

# Sets RPS OK FAILED MEAN P50 P99 (latencies in µs) from an h2load output and its per-request log.
results() { # h2load output, log file
    RPS="$(awk '/^finished in/ {print $4}' "$1")"
    read -r OK FAILED < <(awk '/^requests:/ {print $8, $10 + $12 + $14}' "$1")
    [[ -n $RPS && -n $OK ]] || { cat "$1" >&2; die "could not read h2load's results"; }
    # Log columns: start (µs since epoch), HTTP status, µs until the end of the response. Nearest-rank percentiles.
    read -r MEAN P50 P99 < <(awk -F'\t' '$2 == 200 {print $3}' "$2" | sort -n |
        awk '{v[NR] = $1; s += $1} END {
            if (NR == 0) { print "0 0 0"; exit }
            i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++
            i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++
            printf "%.0f %d %d\n", s / NR, v[i50], v[i99] }')
}

warmup() { # name, port: load whose results are thrown away, so JIT tiering and pools settle before measuring
    local name="$1" port="$2" left="$WARMUP" chunk rps
    WARM_RPS=""
    ((left > 0)) || return 0
    # In windows of up to 10 s, each one's rate printed: the ramp shows whether the server has reached its steady state.
    printf 'warmup   %s %ss, req/s per window:' "$name" "$WARMUP"
    while ((left > 0)); do
        chunk=$((left < 10 ? left : 10))
        load "$port" "$chunk" "$OUT/$PAYLOAD.$name.warmup.txt"
        rps="$(awk '/^finished in/ {printf "%.0f", $4}' "$OUT/$PAYLOAD.$name.warmup.txt")"
        printf ' %s' "$rps"
        WARM_RPS="$rps"
        left=$((left - chunk))
    done
    echo
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system time of a process, in clock ticks

measure() { # name, port, pid; sets the results() globals and CPU (% of one core the server got)
    local name="$1" port="$2" pid="$3" t0 t1
    echo "measure  $name ${DURATION}s  (-c $CONNECTIONS -m $STREAMS)"
    t0="$(cpu_ticks "$pid")"
    load "$port" "$DURATION" "$OUT/$PAYLOAD.$name.h2load.txt" "$OUT/$PAYLOAD.$name.requests.tsv"
    t1="$(cpu_ticks "$pid")"
    CPU="$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v d="$DURATION" 'BEGIN {printf "%.0f", 100 * t / hz / d}')"
    results "$OUT/$PAYLOAD.$name.h2load.txt" "$OUT/$PAYLOAD.$name.requests.tsv"
    grep -E "^(finished in|requests:|time for request:)" "$OUT/$PAYLOAD.$name.h2load.txt" | sed "s/^/           /"
    echo "           server CPU: $CPU% of one core"
    ((OK > 0)) || die "$name: h2load had no successful request (see bench/out/$PAYLOAD.$name.h2load.txt)"
    ((FAILED == 0)) || echo "           note: h2load counted $FAILED failed/errored/timed-out requests"
    # A pinned, saturated server should get all of its core; less means another process took some of it.
    if ((${#PIN_SERVER[@]} > 0 && CPU < 90)); then
        echo "           note: $name got only $CPU% of core 0: something else was running there; this measurement is suspect"
    fi
    # A run well above the last warmup window means the server was still getting faster (JIT tier-up): not steady.
    if [[ -n $WARM_RPS ]] && awk -v m="$RPS" -v w="$WARM_RPS" 'BEGIN {exit !(m > 1.15 * w)}'; then
        echo "           note: $(ratio "$RPS" "$WARM_RPS")x the last warmup window: $name was still warming up; try a longer --warmup"
    fi
}

handled_ok() { # sum of grpc_server_handled_total{...,grpc_code="OK"} for the scenario's method
    curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v svc="grpc_service=\"$GRPC_SERVICE\"" -v m="grpc_method=\"$GRPC_METHOD\"" '
        index($0, "grpc_server_handled_total{") == 1 && index($0, svc) && index($0, m) && index($0, "grpc_code=\"OK\"") { s += $NF }
        END { printf "%.0f\n", s }'
}

ms() { awk -v us="$1" 'BEGIN {printf "%.3f", us / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "n/a"}'; }

SUMMARY=()
row() { # scenario, server, rps, mean, p50, p99, ok, cpu
    SUMMARY+=("$(printf '%-17s %-10s %12.0f %10s %10s %10s %10s %6s' "$1" "$2" "$3" "$(ms "$4")" "$(ms "$5")" "$(ms "$6")" "$7" "$8%")")
}
header() { printf '%-17s %-10s %12s %10s %10s %10s %10s %6s\n' scenario server req/s mean_ms p50_ms p99_ms ok cpu; }

# --- run -------------------------------------------------------------------------------------------------------
echo "machine  $(nproc) cores; pinning: $PINNING; DOTNET_gcServer=0"
for port in "$NOOP_PORT" "$GRPC_PORT" "$HTTP_PORT"; do
    port_busy "$port" && die "port $port on 127.0.0.1 is already in use (set BENCH_NOOP_PORT / BENCH_GRPC_PORT / BENCH_HTTP_PORT)"
done

for s in "${SCENARIOS[@]}"; do
    scenario "$s"
    echo
    echo "== $s: $URL_PATH, payload bench/payloads/$PAYLOAD.txt"
    # Fresh processes for every scenario, so the baseline and the service start equally cold and get the same warmup.
    start noop "$NOOP_DLL" --port "$NOOP_PORT"
    noop_pid=$STARTED_PID
    wait_ready noop "$noop_pid" noop_answers
    verify noop "$NOOP_PORT"

    service_pid=""
    if [[ $s != baseline ]]; then
        name="${DLL##*/}"; name="${name%.dll}"
        # DrainDelay 0: the benchmark needs no graceful drain, and stopping should not take 5 s.
        start "$name" "$DLL" --Legate:GrpcPort="$GRPC_PORT" --Legate:HttpPort="$HTTP_PORT" --Legate:BindAddress=127.0.0.1 \
            --Legate:LogFormat=text --Legate:DrainDelay=00:00:00 "${SERVICE_ARGS[@]}"
        service_pid=$STARTED_PID
        wait_ready "$name" "$service_pid" curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz"
        verify "$name" "$GRPC_PORT"
        # One scrape now: the first /metrics request JITs a lot of code, and it should not land between warmup and measurement.
        handled_ok >/dev/null
    fi

    warmup noop "$NOOP_PORT"
    measure noop "$NOOP_PORT" "$noop_pid"
    B_RPS=$RPS B_MEAN=$MEAN B_P50=$P50 B_P99=$P99
    row "$s" noop "$RPS" "$MEAN" "$P50" "$P99" "$OK" "$CPU"

    if [[ -n $service_pid ]]; then
        warmup "$name" "$GRPC_PORT"
        before="$(handled_ok)"
        measure "$name" "$GRPC_PORT" "$service_pid"
        after="$(handled_ok)"
        row "$s" "${name#legate-}" "$RPS" "$MEAN" "$P50" "$P99" "$OK" "$CPU"
        SUMMARY+=("$(printf '%-17s %-10s %12s %10s %10s %10s' "$s" ratio "$(ratio "$RPS" "$B_RPS")" "$(ratio "$MEAN" "$B_MEAN")" "$(ratio "$P50" "$B_P50")" "$(ratio "$P99" "$B_P99")")")
        # The service's own count of calls it answered OK must cover every call h2load saw succeed.
        echo "check    grpc_server_handled_total{grpc_service=\"$GRPC_SERVICE\",grpc_method=\"$GRPC_METHOD\",grpc_code=\"OK\"}"
        echo "           grew by $((after - before)) ($before -> $after); h2load successes: $OK"
        ((after - before >= OK)) || die "$s: the service counted $((after - before)) OK calls but h2load counted $OK successes"
        stop "$service_pid"
    fi
    stop "$noop_pid"
    echo
    header
    printf '%s\n' "${SUMMARY[@]}" | grep "^$s " || true
done

echo
echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ); duration ${DURATION}s, warmup ${WARMUP}s, -c $CONNECTIONS -m $STREAMS; ratio = service / noop; cpu = server's share of one core)"
{ header; printf '%s\n' "${SUMMARY[@]}"; } | tee "$OUT/summary.txt"
