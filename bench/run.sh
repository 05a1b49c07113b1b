#!/usr/bin/env bash
# Legate benchmark harness: measures one Legate service against the no-op gRPC baseline (bench/Noop) with h2load,
# under the same load, on the same core, and prints the service's throughput and latency as a ratio of the
# baseline's. See bench/README.md for what the numbers mean and why each step is here.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/run.sh SCENARIO... [--duration S] [--connections C] [--streams M] [--warmup S]
                   [--rounds N] [--round-duration S] [--rate R | --half-rate] [--rate-connections N]

scenarios:
  baseline           the no-op server alone (Check with the authz-check payload)
  authz-check        envoy.service.auth.v3.Authorization/Check            vs baseline
  ratelimit-should   envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit vs baseline (in memory, 2 descriptors)
  statsink-stream    envoy.service.metrics.v3.MetricsService/StreamMetrics vs baseline
  authz-apikey       Check allowed by an API key (bench/rules/authz/policies.yaml)                  vs baseline
  authz-jwt-cached   Check allowed by an RS256 JWT, the same token every call (validated-token cache hit) vs baseline
  authz-jwt-distinct Check allowed by an RS256 JWT with the token cache off: a signature check every call, as
                     with a new token each call; also measures 'openssl speed rsa2048' verify/s on the service's core
                     (credentials and payloads from bench/payloads/authz-tokens.sh, written to bench/out)
  statsink-fleet [--envoys 50 --stats 5000 --interval 5 --duration 60 --peak-duration 15]
                     statsink at fleet scale (bench/statsink-fleet.sh, no h2load): CPU share and memory of a fleet
                     of simulated Envoys, peak samples/s, /metrics scrape time for the whole fleet; must come alone
  ratelimit-memory-N                     ShouldRateLimit, in-memory counters, every call within its limits
  ratelimit-redis-N                      ShouldRateLimit, counters in Redis, every call within its limits
  ratelimit-redis-overlimit-cached-N     ShouldRateLimit, Redis, every descriptor over its limit, LocalOverLimitCache=true
  ratelimit-redis-overlimit-uncached-N   the same with LocalOverLimitCache=false (every call goes to Redis)
  ratelimit-redis-writebehind-N          ShouldRateLimit, Redis with WriteBehind=true (known counters decided locally,
                                         hits sent every 10 ms), every call within its limits
                     N = 1 or 3 descriptors per call (bench/payloads/ratelimit-N.txt; rules in bench/rules/ratelimit/)
  all                authz-check ratelimit-should statsink-stream, each with its own baseline measurement
  ratelimit          the eight ratelimit-{memory,redis,redis-overlimit-cached,redis-overlimit-uncached}-{1,3}
  authz              authz-apikey authz-jwt-cached authz-jwt-distinct

options (defaults):  --duration 20  --connections 4  --streams 32  --warmup 90   (seconds; warmup 0 skips it; .NET needs 60-90 s of load on one core to finish tiering up)
  --rounds N         after the main measurement, N short windows of the service, each between two of the baseline
                     (the noop; openssl speed for authz-jwt-distinct), every window's ratio to the mean of the two
                     around it; their median and spread show what the machine's drift does to the ratio (5; 0 = off)
  --round-duration S each of those windows (5)
  --rate R           measure at a fixed R requests/s in all instead of as fast as possible (h2load --rps per connection)
  --half-rate        after the usual (maximum rate) measurements, measure the service again at half of its maximum
                     req/s, and the noop at that same rate: p50/p99 at a load the server can keep up with
  --rate-connections N   connections for the fixed-rate runs (10), opened 1 ms apart so that h2load's 10 ms
                     --rps ticks do not all fire at once
environment:         BENCH_NOOP_PORT (20050), BENCH_GRPC_PORT (20051), BENCH_HTTP_PORT (20052),
                     BENCH_REDIS_PORT (first free port from 20053; the script starts its own redis-server there),
                     BENCH_REDIS_CPUS  taskset list for redis-server (default: core 2 with 3+ cores, else core 0),
                     BENCH_SERVICE_ARGS  extra arguments for the service, e.g. '--Logging:LogLevel:Default=Warning'
                     (they come last, so they override the scenario's own, e.g. --Legate:Rules:ratelimit:Path=FILE)
EOF
    exit "${1:-2}"
}

die() { echo "run.sh: $*" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/bench"
OUT="$BENCH/out"

DURATION=20 CONNECTIONS=4 STREAMS=32 WARMUP=90 RATE="" HALF_RATE=0 RATE_CONNECTIONS=10 ROUNDS=5 ROUND_SECONDS=5
NOOP_PORT="${BENCH_NOOP_PORT:-20050}"
GRPC_PORT="${BENCH_GRPC_PORT:-20051}"
HTTP_PORT="${BENCH_HTTP_PORT:-20052}"
REDIS_PORT="${BENCH_REDIS_PORT:-}"
read -r -a SERVICE_ARGS <<<"${BENCH_SERVICE_ARGS:-}"

RATELIMIT_GROUP=(ratelimit-memory-1 ratelimit-memory-3 ratelimit-redis-1 ratelimit-redis-3
    ratelimit-redis-overlimit-cached-1 ratelimit-redis-overlimit-cached-3
    ratelimit-redis-overlimit-uncached-1 ratelimit-redis-overlimit-uncached-3
    ratelimit-redis-writebehind-1 ratelimit-redis-writebehind-3)

[[ $# -ge 1 ]] || usage
SCENARIOS=()
while (($#)); do
    case "$1" in
        -h | --help) usage 0 ;;
        statsink-fleet) shift; exec "$BENCH/statsink-fleet.sh" "$@" ;;
        --half-rate) HALF_RATE=1; shift; continue ;;
        --*) ;;
        baseline | authz-check | authz-apikey | authz-jwt-cached | authz-jwt-distinct | ratelimit-should | statsink-stream | \
            ratelimit-memory-[13] | ratelimit-redis-[13] | ratelimit-redis-overlimit-cached-[13] | ratelimit-redis-overlimit-uncached-[13] | ratelimit-redis-writebehind-[13])
            SCENARIOS+=("$1"); shift; continue ;;
        all) SCENARIOS+=(authz-check ratelimit-should statsink-stream); shift; continue ;;
        ratelimit) SCENARIOS+=("${RATELIMIT_GROUP[@]}"); shift; continue ;;
        authz) SCENARIOS+=(authz-apikey authz-jwt-cached authz-jwt-distinct); shift; continue ;;
        *) echo "run.sh: unknown scenario '$1'" >&2; usage ;;
    esac
    [[ $# -ge 2 ]] || die "$1 needs a value"
    case "$1" in
        --duration) DURATION="$2" ;;
        --connections) CONNECTIONS="$2" ;;
        --streams) STREAMS="$2" ;;
        --warmup) WARMUP="$2" ;;
        --rate) RATE="$2" ;;
        --rate-connections) RATE_CONNECTIONS="$2" ;;
        --rounds) ROUNDS="$2" ;;
        --round-duration) ROUND_SECONDS="$2" ;;
        *) die "unknown option $1 (try --help)" ;;
    esac
    shift 2
done
((${#SCENARIOS[@]} > 0)) || usage
for v in DURATION CONNECTIONS STREAMS WARMUP RATE_CONNECTIONS ROUNDS ROUND_SECONDS NOOP_PORT GRPC_PORT HTTP_PORT ${RATE:+RATE} ${REDIS_PORT:+REDIS_PORT}; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number (was '${!v}')"
done
((DURATION > 0 && CONNECTIONS > 0 && STREAMS > 0 && RATE_CONNECTIONS > 0)) || die "duration, connections and streams must be positive"
[[ -z $RATE ]] || ((RATE > 0)) || die "--rate must be positive"
[[ -z $RATE || $HALF_RATE == 0 ]] || die "--rate and --half-rate exclude each other"

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
# Ratelimit scenarios also set STORE (memory | redis), RULES (the rules file), CACHE (LocalOverLimitCache, Redis
# only), EXPECT_CODE (the overall_code every answer must carry: 1 OK, 2 OVER_LIMIT) and SCENARIO_ARGS (for the service).
scenario() {
    TAG="$1" STORE="" RULES="" CACHE="" WRITE_BEHIND=false EXPECT_CODE="" SCENARIO_ARGS=() EXPECT_ALLOW="" PAYLOAD_DIR="$BENCH/payloads"
    case "$1" in
        baseline | authz-check)
            PROJECT=authz/Legate.Authz.csproj DLL=authz/bin/Release/net10.0/legate-authz.dll
            GRPC_SERVICE=envoy.service.auth.v3.Authorization GRPC_METHOD=Check
            PROTO=envoy/service/auth/v3/external_auth.proto
            REQUEST=envoy.service.auth.v3.CheckRequest RESPONSE=envoy.service.auth.v3.CheckResponse
            PAYLOAD=authz-check ;;
        authz-apikey | authz-jwt-*)
            # Calls the bench policy allows: every answer must be OK (checked in verify, and over every call by the decision counters).
            PROJECT=authz/Legate.Authz.csproj DLL=authz/bin/Release/net10.0/legate-authz.dll
            GRPC_SERVICE=envoy.service.auth.v3.Authorization GRPC_METHOD=Check
            PROTO=envoy/service/auth/v3/external_auth.proto
            REQUEST=envoy.service.auth.v3.CheckRequest RESPONSE=envoy.service.auth.v3.CheckResponse
            PAYLOAD=authz-jwt PAYLOAD_DIR="$OUT" EXPECT_ALLOW=1 RULES="$BENCH/rules/authz/policies.yaml"
            if [[ $1 == authz-apikey ]]; then PAYLOAD=authz-apikey; fi
            SCENARIO_ARGS=(--Legate:Rules:authz:Path="$RULES")
            # No validated-token cache: each call verifies the RS256 signature, the cost of a token never seen before.
            if [[ $1 == authz-jwt-distinct ]]; then SCENARIO_ARGS+=(--Legate:Authz:TokenCacheCapacity=0); fi ;;
        ratelimit-*)
            PROJECT=ratelimit/Legate.RateLimit.csproj DLL=ratelimit/bin/Release/net10.0/legate-ratelimit.dll
            GRPC_SERVICE=envoy.service.ratelimit.v3.RateLimitService GRPC_METHOD=ShouldRateLimit
            PROTO=envoy/service/ratelimit/v3/rls.proto
            REQUEST=envoy.service.ratelimit.v3.RateLimitRequest RESPONSE=envoy.service.ratelimit.v3.RateLimitResponse
            PAYLOAD="ratelimit-${1##*-}" STORE=memory RULES=within EXPECT_CODE=1
            case "$1" in
                ratelimit-should) PAYLOAD=ratelimit-should ;;
                ratelimit-redis-overlimit-cached-*) STORE=redis RULES=overlimit CACHE=true EXPECT_CODE=2 ;;
                ratelimit-redis-overlimit-uncached-*) STORE=redis RULES=overlimit CACHE=false EXPECT_CODE=2 ;;
                ratelimit-redis-writebehind-*) STORE=redis CACHE=false WRITE_BEHIND=true ;;
                ratelimit-redis-*) STORE=redis CACHE=true ;; # the default configuration: the cache is on, and finds nothing to answer
            esac
            RULES="$BENCH/rules/ratelimit/$RULES.yaml"
            SCENARIO_ARGS=(--Legate:Rules:ratelimit:Path="$RULES" --Legate:RateLimit:Store="$STORE")
            if [[ $STORE == redis ]]; then
                # StoreTimeout: the service's default (10 ms) suits production, where Envoy waits 20 ms; a saturated
                # benchmark queues calls for longer than that, and a timeout would turn them into UNAVAILABLE.
                SCENARIO_ARGS+=(--Legate:Redis:Configuration="127.0.0.1:$REDIS_PORT" --Legate:RateLimit:StoreTimeout=00:00:00.200
                    --Legate:RateLimit:LocalOverLimitCache="$CACHE" --Legate:RateLimit:WriteBehind="$WRITE_BEHIND")
            fi ;;
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

NEED_REDIS=0
for s in "${SCENARIOS[@]}"; do
    scenario "$s"
    [[ $STORE == redis ]] && NEED_REDIS=1
done

# Redis: the script's own redis-server, without persistence. With three or more cores it gets a core of its own;
# with two it shares core 0 with the service, since h2load must keep core 1 to itself (and the noop never uses
# Redis). Then the service and Redis split one core, as a sidecar Redis on a one-core pod would.
PIN_REDIS=() REDIS_PINNING=""
if ((NEED_REDIS)); then
    need redis-server "sudo apt-get install -y redis-server"
    need redis-cli "sudo apt-get install -y redis-tools"
    if [[ -n ${BENCH_REDIS_CPUS:-} ]]; then
        PIN_REDIS=(taskset -c "$BENCH_REDIS_CPUS") REDIS_PINNING="redis-server on core(s) $BENCH_REDIS_CPUS (BENCH_REDIS_CPUS)"
    elif (($(nproc) >= 3)); then
        PIN_REDIS=(taskset -c 2) REDIS_PINNING="redis-server on core 2"
    elif (($(nproc) == 2)); then
        PIN_REDIS=(taskset -c 0) REDIS_PINNING="redis-server shares core 0 with the service"
    else
        REDIS_PINNING="redis-server unpinned"
    fi
fi

# --- build and payloads ----------------------------------------------------------------------------------------
mkdir -p "$OUT"
build() {
    local project="$1"
    echo "build    $project (Release)"
    dotnet build "$ROOT/$project" -c Release -v q --nologo >"$OUT/build.log" 2>&1 ||
        { tail -n 30 "$OUT/build.log" >&2; die "build of $project failed (full log: $OUT/build.log)"; }
}
build bench/Noop/Legate.Bench.Noop.csproj
BUILT=" "
for s in "${SCENARIOS[@]}"; do
    [[ $s == baseline ]] && continue
    scenario "$s"
    [[ $BUILT == *" $PROJECT "* ]] && continue
    build "$PROJECT"
    BUILT+="$PROJECT "
done

# gRPC's length-prefixed message: one byte "not compressed", then the length as 4 bytes big-endian.
frame() { # payload name, message type, proto file
    local body="$OUT/$1.pb" len
    protoc_ --encode="$2" "$3" <"$PAYLOAD_DIR/$1.txt" >"$body" || die "protoc could not encode ${PAYLOAD_DIR#"$ROOT"/}/$1.txt as $2"
    len=$(wc -c <"$body")
    {
        printf "$(printf '\\%03o\\%03o\\%03o\\%03o\\%03o' 0 $((len >> 24 & 255)) $((len >> 16 & 255)) $((len >> 8 & 255)) $((len & 255)))"
        cat "$body"
    } >"$OUT/$1.frame"
    echo "payload  ${PAYLOAD_DIR#"$ROOT"/}/$1.txt -> bench/out/$1.frame ($len bytes + 5)"
}
ENCODED=" " AUTHZ_TOKENS=0
for s in "${SCENARIOS[@]}"; do
    scenario "$s"
    if [[ $PAYLOAD_DIR == "$OUT" ]] && ((!AUTHZ_TOKENS)); then
        # Fresh credentials for the authz scenarios (a token valid for 24 h, an API key), once per run.
        "$BENCH/payloads/authz-tokens.sh" "$OUT" || die "bench/payloads/authz-tokens.sh failed"
        AUTHZ_TOKENS=1
    fi
    [[ $ENCODED == *" $PAYLOAD "* ]] && continue
    frame "$PAYLOAD" "$REQUEST" "$PROTO"
    ENCODED+="$PAYLOAD "
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

# --- redis -----------------------------------------------------------------------------------------------------
REDIS_PID=""
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

start_redis() {
    local p
    if [[ -z $REDIS_PORT ]]; then
        for ((p = 20053; p < 20153; p++)); do
            port_busy "$p" || { REDIS_PORT=$p; break; }
        done
        [[ -n $REDIS_PORT ]] || die "no free port for redis-server in 20053-20152 (set BENCH_REDIS_PORT)"
    else
        port_busy "$REDIS_PORT" && die "port $REDIS_PORT on 127.0.0.1 is already in use (set BENCH_REDIS_PORT)"
    fi
    # No persistence, nothing written next to the repo; in the foreground of its own process, so the trap stops it.
    "${PIN_REDIS[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$OUT" \
        --daemonize no --loglevel warning >"$OUT/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    wait_ready redis "$REDIS_PID" sh -c "redis-cli -h 127.0.0.1 -p $REDIS_PORT ping | grep -q PONG"
    echo "redis    redis-server $(redis-server --version | grep -oE 'v=[^ ]+' | cut -c3-) on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID; $REDIS_PINNING)"
}

# Calls of the counter script (EVAL / EVALSHA) since the last CONFIG RESETSTAT.
redis_script_calls() {
    rcli info commandstats | tr -d '\r' | awk -F'[:=,]' '$1 ~ /^cmdstat_eval/ {s += $3} END {printf "%.0f\n", s}'
}

grpc_call() { # port, nghttp options...
    local port="$1"; shift
    nghttp "$@" -d "$FRAME" -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$port$URL_PATH"
}

# nghttp exits 0 even when it cannot connect: ready means a response status came back.
noop_answers() { grpc_call "$NOOP_PORT" -v 2>&1 | grep -ac "recv (stream_id=[0-9]*) :status: " >/dev/null; }

code_name() { case "$1" in 0) echo UNKNOWN ;; 1) echo OK ;; 2) echo OVER_LIMIT ;; *) echo "code $1" ;; esac; }

# h2load counts every HTTP 200 as a success, and a gRPC error is an HTTP 200 whose grpc-status trailer is not 0.
# So before measuring, one verbose call shows the status and the trailer, and its response message decoded.
# For ratelimit, the decision counts too: with expect set, the response's overall_code must be that value.
verify() { # name, port, [file suffix], [expected overall_code]
    local name="$1" port="$2" suffix="${3:-}" expect="${4:-}"
    local v="$OUT/$TAG.$1.verify$suffix.txt" r="$OUT/$TAG.$1.response$suffix" status body len code
    grpc_call "$port" -v >"$v" 2>&1 || true
    grep -aq "recv (stream_id=[0-9]*) :status: " "$v" || { tail -n 5 "$v" >&2; die "$name: no response from nghttp to $URL_PATH"; }
    echo "verify   $name $URL_PATH"
    grep -aE 'recv \(stream_id=[0-9]+\) (:status|grpc-status|grpc-message):' "$v" | sed -E 's/^.*recv \(stream_id=[0-9]+\) /           /'
    status="$(grep -aoE 'recv \(stream_id=[0-9]+\) grpc-status: [0-9]+' "$v" | tail -n 1 | awk '{print $NF}')"
    [[ -n $status ]] || die "$name: no grpc-status in the response (see bench/out/${v##*/})"
    [[ $status == 0 ]] || die "$name: grpc-status $status, not 0: every h2load 'success' would be a failed call"
    # nghttp -v writes each DATA frame's payload just before its "recv DATA frame <length=N>" line: cut those N bytes out.
    : >"$r"
    while IFS=: read -r offset match; do
        len="${match##*length=}"
        tail -c "+$((offset - len + 1))" "$v" | head -c "$len" >>"$r"
    done < <(grep -aboE '\[ *[0-9.]+\] recv DATA frame <length=[0-9]+' "$v")
    body="$(wc -c <"$r")"
    len="$(head -c 5 "$r" | od -An -tu1 | awk '{print $2 * 16777216 + $3 * 65536 + $4 * 256 + $5}')"
    [[ $body -ge 5 && $((len + 5)) -eq $body ]] || die "$name: could not read the gRPC message out of bench/out/${v##*/}"
    echo "           $RESPONSE ($len bytes):"
    if ((len == 0)); then
        echo "             (empty message)"
    else
        tail -c "+6" "$r" | protoc_ --decode="$RESPONSE" "$PROTO" | sed 's/^/             /'
    fi
    if [[ -n $EXPECT_ALLOW && $port == "$GRPC_PORT" ]]; then
        # CheckResponse: an allow has status.code 0 (proto3 leaves it out) and an ok_response; anything else is a deny.
        tail -c "+6" "$r" | protoc_ --decode="$RESPONSE" "$PROTO" >"$r.txt"
        awk '/^status \{/ {s = 1} s && /^  code: [1-9]/ {bad = 1} /^\}/ {s = 0} /^ok_response \{/ {ok = 1} END {exit !(ok && !bad)}' "$r.txt" ||
            die "$name: the CheckResponse is not an allow (see bench/out/${r##*/}.txt): check the payload and bench/rules/authz/policies.yaml"
        echo "           decision: allow (status OK, ok_response), as expected"
    fi
    if [[ -n $expect ]]; then
        # RateLimitResponse field 1 is overall_code; proto3 leaves it out when it is 0 (UNKNOWN).
        code="$( ((len == 0)) || tail -c "+6" "$r" | protoc_ --decode_raw | awk -F': ' '$1 == "1" {print $2; exit}')"
        code="${code:-0}"
        [[ $code == "$expect" ]] || die "$name: overall_code $(code_name "$code") ($code), expected $(code_name "$expect") ($expect)"
        echo "           decision: overall_code $(code_name "$code") ($code), as expected"
    fi
}

load() { # port, duration, h2load output file, [log file], [total req/s]
    local port="$1" duration="$2" out="$3" log=() mode=()
    mode=(-D "$duration" -c "$CONNECTIONS")
    # h2load appends to an existing log file: start each measurement from an empty one.
    [[ -n ${4:-} ]] && { rm -f "$4"; log=("--log-file=$4"); }
    if [[ -n ${5:-} ]]; then
        # A fixed rate. --rps is per connection, and h2load's timer for it fires every max(10 ms, 1/rps): what is due
        # goes out at once, so connections started together send their calls in one burst every 10 ms, and the p99
        # would measure how long the server takes to drain a burst. -r 1 --rate-period=1ms opens the connections
        # 1 ms apart, so their bursts are spread over h2load's 10 ms tick. -r excludes -D: the run is a number of
        # requests, rate x duration.
        mode=(-n "$(($5 * duration))" -c "$RATE_CONNECTIONS" -r 1 --rate-period=1ms
            "--rps=$(awk -v r="$5" -v c="$RATE_CONNECTIONS" 'BEGIN {printf "%.3f", r / c}')")
    fi
    # In the background and waited for, so that a signal to this script is handled at once, not after the run.
    "${PIN_CLIENT[@]}" h2load "${mode[@]}" -m "$STREAMS" -t 1 \
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
        load "$port" "$chunk" "$OUT/$TAG.$name.warmup.txt"
        rps="$(awk '/^finished in/ {printf "%.0f", $4}' "$OUT/$TAG.$name.warmup.txt")"
        printf ' %s' "$rps"
        WARM_RPS="$rps"
        WARM_WINDOWS["$TAG $name"]+=" $rps"
        left=$((left - chunk))
    done
    echo
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system time of a process, in clock ticks
cpu_share() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v ns="$2" 'BEGIN {printf "%.0f", 100 * t / hz / (ns / 1e9)}'; } # ticks, wall ns

# One h2load run against a server: at full speed, or at a fixed total rate. Sets the results() globals, CPU (% of one
# core the server got) and, when Redis serves the scenario and the server is the service, RCPU (Redis's share) and
# RCALLS (counter script calls per request).
measure() { # name, port, pid, [file suffix], [total req/s]
    local name="$1" port="$2" pid="$3" suffix="${4:-}" rate="${5:-}" t0 t1 r0 r1 w0 w1 with_redis=0 shared
    [[ -n $REDIS_PID && $STORE == redis && $pid != "${noop_pid:-}" ]] && with_redis=1
    if [[ -n $rate ]]; then
        echo "measure  $name ${DURATION}s at $rate req/s  (-c $RATE_CONNECTIONS -m $STREAMS, --rps $(awk -v r="$rate" -v c="$RATE_CONNECTIONS" 'BEGIN {printf "%.0f", r / c}') per connection, connections 1 ms apart)"
    else
        echo "measure  $name ${DURATION}s  (-c $CONNECTIONS -m $STREAMS)"
    fi
    RCPU="" RCALLS=""
    ((with_redis)) && { rcli config resetstat >/dev/null; r0="$(cpu_ticks "$REDIS_PID")"; }
    t0="$(cpu_ticks "$pid")" w0="$(date +%s%N)"
    load "$port" "$DURATION" "$OUT/$TAG.$name$suffix.h2load.txt" "$OUT/$TAG.$name$suffix.requests.tsv" "$rate"
    t1="$(cpu_ticks "$pid")" w1="$(date +%s%N)"
    ((with_redis)) && { r1="$(cpu_ticks "$REDIS_PID")"; RCPU="$(cpu_share $((r1 - r0)) $((w1 - w0)))"; }
    CPU="$(cpu_share $((t1 - t0)) $((w1 - w0)))"
    results "$OUT/$TAG.$name$suffix.h2load.txt" "$OUT/$TAG.$name$suffix.requests.tsv"
    grep -E "^(finished in|requests:|time for request:)" "$OUT/$TAG.$name$suffix.h2load.txt" | sed "s/^/           /"
    echo "           server CPU: $CPU% of one core${RCPU:+; redis-server CPU: $RCPU%}"
    if ((with_redis)); then
        RCALLS="$(awk -v c="$(redis_script_calls)" -v n="$OK" 'BEGIN {printf "%.2f", (n > 0) ? c / n : 0}')"
        echo "           redis: $RCALLS counter script calls (EVAL/EVALSHA) per request"
    fi
    ((OK > 0)) || die "$name: h2load had no successful request (see bench/out/$TAG.$name$suffix.h2load.txt)"
    ((FAILED == 0)) || echo "           note: h2load counted $FAILED failed/errored/timed-out requests"
    if [[ -n $rate ]]; then
        # At a fixed rate the server is not saturated: its CPU share says nothing about interference, but a rate
        # h2load could not reach means calls queued, and the latencies include that queueing.
        if awk -v m="$RPS" -v r="$rate" 'BEGIN {exit !(m < 0.95 * r)}'; then
            echo "           note: h2load reached only $RPS of $rate req/s: $name could not keep up; these latencies include queueing"
        fi
        return 0
    fi
    # A pinned, saturated server should get all of its core; less means another process took some of it.
    # When Redis shares the core, the two together should.
    shared=$CPU
    [[ -n $RCPU && ${PIN_REDIS[*]} == "${PIN_SERVER[*]}" && ${#PIN_SERVER[@]} -gt 0 ]] && shared=$((CPU + RCPU))
    if ((${#PIN_SERVER[@]} > 0 && shared < 90)); then
        echo "           note: $name got only $shared% of core 0${RCPU:+ (with redis-server)}: something else was running there; this measurement is suspect"
    fi
    # A run well above the last warmup window means the server was still getting faster (JIT tier-up): not steady.
    if [[ -n $WARM_RPS ]] && awk -v m="$RPS" -v w="$WARM_RPS" 'BEGIN {exit !(m > 1.15 * w)}'; then
        echo "           note: $(ratio "$RPS" "$WARM_RPS")x the last warmup window: $name was still warming up; try a longer --warmup"
    fi
}

# /metrics of the service, once per question.
scrape() { curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics"; }

handled_ok() { # sum of grpc_server_handled_total{...,grpc_code="OK"} for the scenario's method
    scrape | awk -v svc="grpc_service=\"$GRPC_SERVICE\"" -v m="grpc_method=\"$GRPC_METHOD\"" '
        index($0, "grpc_server_handled_total{") == 1 && index($0, svc) && index($0, m) && index($0, "grpc_code=\"OK\"") { s += $NF }
        END { printf "%.0f\n", s }'
}

# The service's own timing of the scenario's calls (grpc_server_handling_seconds: from the call's start in the service
# to its status), as cumulative counts: "within-0.5ms within-1ms within-2.5ms all".
handling_buckets() {
    scrape | awk -v svc="grpc_service=\"$GRPC_SERVICE\"" -v m="grpc_method=\"$GRPC_METHOD\"" '
        index($0, "grpc_server_handling_seconds_bucket{") == 1 && index($0, svc) && index($0, m) {
            if (index($0, "le=\"0.0005\"")) a += $NF
            else if (index($0, "le=\"0.001\"")) b += $NF
            else if (index($0, "le=\"0.0025\"")) c += $NF
            else if (index($0, "le=\"+Inf\"")) n += $NF
        }
        END { printf "%.0f %.0f %.0f %.0f\n", a, b, c, n }'
}

# The ratelimit service's own tally of its decisions (per descriptor hit) in domain "bench": "within over".
decisions() {
    scrape | awk '
        index($0, "legate_ratelimit_within_limit_total{") == 1 && index($0, "domain=\"bench\"") { w += $NF }
        index($0, "legate_ratelimit_over_limit_total{") == 1 && index($0, "domain=\"bench\"") { o += $NF }
        END { printf "%.0f %.0f\n", w, o }'
}

# The authz service's own tally of its decisions: "allow deny".
authz_decisions() {
    scrape | awk '
        index($0, "legate_authz_decisions_total{") == 1 && index($0, "result=\"allow\"") { a += $NF }
        index($0, "legate_authz_decisions_total{") == 1 && index($0, "result=\"deny\"") { d += $NF }
        END { printf "%.0f %.0f\n", a, d }'
}

# One core's RSA-2048 verify rate (openssl speed, pinned like the servers): what a distinct-token JWT call must do once.
openssl_verify_rate() {
    need openssl "sudo apt-get install -y openssl"
    "${PIN_SERVER[@]}" openssl speed -mr -seconds "${BENCH_OPENSSL_SECONDS:-3}" rsa2048 2>/dev/null | awk -F: '$1 == "+F2" {printf "%.0f\n", $5}'
}

# Interleaved rounds: the baseline and the service in turn, short windows, each service window divided by the mean of
# the baseline windows either side of it. One long run of each, minutes apart, compares two speeds of a shared VM
# (it drifts by tens of percent within minutes); adjacent windows share the machine's speed, so the median of the
# rounds' ratios is a second reading of the ratio, and their spread shows how much the machine moved.
round_base() { # round: the baseline's rate now (the noop's req/s, or for authz-jwt-distinct openssl's verify/s)
    if [[ $s == authz-jwt-distinct ]]; then
        BENCH_OPENSSL_SECONDS=$ROUND_SECONDS openssl_verify_rate
    else
        load "$NOOP_PORT" "$ROUND_SECONDS" "$OUT/$TAG.noop.round$1.h2load.txt"
        awk '/^finished in/ {printf "%.0f\n", $4}' "$OUT/$TAG.noop.round$1.h2load.txt"
    fi
}
rounds() { # service name, port; adds the ratio-rounds row
    local name="$1" port="$2" i prev base svc r all="" median what=noop
    [[ $s == authz-jwt-distinct ]] && what="openssl verify/s"
    echo "rounds   $ROUNDS x ${ROUND_SECONDS}s: $what, then $name, in turn; each $name window / the mean of the $what windows around it"
    prev="$(round_base 0)"
    [[ -n $prev ]] || die "rounds: no baseline rate"
    for ((i = 1; i <= ROUNDS; i++)); do
        load "$port" "$ROUND_SECONDS" "$OUT/$TAG.$name.round$i.h2load.txt"
        svc="$(awk '/^finished in/ {printf "%.0f", $4}' "$OUT/$TAG.$name.round$i.h2load.txt")"
        base="$(round_base "$i")"
        r="$(ratio "$svc" "$(awk -v a="$prev" -v b="$base" 'BEGIN {print (a + b) / 2}')")"
        printf '           %d: %s %s, %s %s, %s %s -> %s\n' "$i" "$what" "$prev" "$name" "$svc" "$what" "$base" "$r"
        all+="${all:+ }$r"
        prev=$base
    done
    median="$(tr ' ' '\n' <<<"$all" | sort -n | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f", m}')"
    echo "           median $median (each: $all)"
    SUMMARY+=("$(printf "%-${SW}s %-14s %10s   %s" "$s" "ratio-rounds" "$median" "median of $ROUNDS interleaved ${ROUND_SECONDS}s windows vs $what: $all")")
}

ms() { awk -v us="$1" 'BEGIN {printf "%.3f", us / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "n/a"}'; }

# Scenario names go up to 36 characters; the column fits the longest one in this run.
SW=17
for s in "${SCENARIOS[@]}"; do ((${#s} > SW)) && SW=${#s}; done
SUMMARY=()
declare -A WARM_WINDOWS=()
fmt_row() { # scenario, server, rps, mean, p50, p99, ok, cpu, [redis cpu], [redis calls per request]
    printf "%-${SW}s %-14s %10.0f %9s %9s %9s %10s %5s %9s %10s" "$1" "$2" "$3" "$(ms "$4")" "$(ms "$5")" "$(ms "$6")" "$7" "$8%" "${9:+$9%}" "${10:-}"
}
row() { SUMMARY+=("$(fmt_row "$@")"); }
ratio_row() { # scenario, label, service rps, mean, p50, p99, baseline rps, mean, p50, p99
    SUMMARY+=("$(printf "%-${SW}s %-14s %10s %9s %9s %9s" "$1" "$2" "$(ratio "$3" "$7")" "$(ratio "$4" "$8")" "$(ratio "$5" "$9")" "$(ratio "$6" "${10}")")")
}
header() { printf "%-${SW}s %-14s %10s %9s %9s %9s %10s %5s %9s %10s\n" scenario server req/s mean_ms p50_ms p99_ms ok cpu redis_cpu redis/call; }

# --- run -------------------------------------------------------------------------------------------------------
echo "machine  $(nproc) cores; pinning: $PINNING${REDIS_PINNING:+; $REDIS_PINNING}; DOTNET_gcServer=0"
for port in "$NOOP_PORT" "$GRPC_PORT" "$HTTP_PORT"; do
    port_busy "$port" && die "port $port on 127.0.0.1 is already in use (set BENCH_NOOP_PORT / BENCH_GRPC_PORT / BENCH_HTTP_PORT)"
done
((NEED_REDIS)) && start_redis

for s in "${SCENARIOS[@]}"; do
    scenario "$s"
    echo
    echo "== $s: $URL_PATH, payload bench/payloads/$PAYLOAD.txt${RULES:+, rules ${RULES#"$ROOT"/}, store $STORE}${CACHE:+, LocalOverLimitCache=$CACHE}"
    # Fresh processes for every scenario, so the baseline and the service start equally cold and get the same warmup.
    start noop "$NOOP_DLL" --port "$NOOP_PORT"
    noop_pid=$STARTED_PID
    wait_ready noop "$noop_pid" noop_answers
    verify noop "$NOOP_PORT"

    service_pid=""
    if [[ $s != baseline ]]; then
        name="${DLL##*/}"; name="${name%.dll}"
        # Every Redis scenario starts from an empty Redis: no counter, and no over-limit state, left by the one before.
        [[ $STORE == redis ]] && { rcli flushall >/dev/null; echo "redis    FLUSHALL"; }
        # DrainDelay 0: the benchmark needs no graceful drain, and stopping should not take 5 s.
        start "$name" "$DLL" --Legate:GrpcPort="$GRPC_PORT" --Legate:HttpPort="$HTTP_PORT" --Legate:BindAddress=127.0.0.1 \
            --Legate:LogFormat=text --Legate:DrainDelay=00:00:00 "${SCENARIO_ARGS[@]}" "${SERVICE_ARGS[@]}"
        service_pid=$STARTED_PID
        ((${#SERVICE_ARGS[@]} == 0)) || echo "args     BENCH_SERVICE_ARGS (last, so they override the scenario's): ${SERVICE_ARGS[*]}"
        wait_ready "$name" "$service_pid" curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz"
        if [[ $EXPECT_CODE == 2 ]]; then
            # The limits are 1 a day: the first call is within them, every later one over.
            grpc_call "$GRPC_PORT" >/dev/null 2>&1 || true
            echo "prime    one call, so that every counter of the payload is at its limit (1 a day) and the next calls are over it"
        fi
        verify "$name" "$GRPC_PORT" "" "$EXPECT_CODE"
        # One scrape now: the first /metrics request JITs a lot of code, and it should not land between warmup and measurement.
        handled_ok >/dev/null
    fi

    warmup noop "$NOOP_PORT"
    measure noop "$NOOP_PORT" "$noop_pid" "" "$RATE"
    B_RPS=$RPS B_MEAN=$MEAN B_P50=$P50 B_P99=$P99
    row "$s" noop "$RPS" "$MEAN" "$P50" "$P99" "$OK" "$CPU"

    if [[ -n $service_pid ]]; then
        warmup "$name" "$GRPC_PORT"
        [[ $s == authz-jwt-distinct ]] && verify_rate="$(openssl_verify_rate)"
        before="$(handled_ok)"
        [[ -n $EXPECT_CODE ]] && read -r w0 o0 < <(decisions)
        [[ -n $EXPECT_ALLOW ]] && read -r a0 d0 < <(authz_decisions)
        measure "$name" "$GRPC_PORT" "$service_pid" "" "$RATE"
        S_RPS=$RPS S_MEAN=$MEAN S_P50=$P50 S_P99=$P99 OKS=$OK
        row "$s" "${name#legate-}" "$RPS" "$MEAN" "$P50" "$P99" "$OK" "$CPU" "$RCPU" "$RCALLS"
        # The noop once more, right after (it is still warm): a shared VM's speed drifts by tens of percent within
        # minutes, so the baseline is the mean of the runs before and after the service's, and a drift is reported.
        WARM_RPS="" # its warmup was long before: the steadiness check does not apply
        measure noop "$NOOP_PORT" "$noop_pid" .after "$RATE"
        row "$s" noop-after "$RPS" "$MEAN" "$P50" "$P99" "$OK" "$CPU"
        drift="$(awk -v a="$B_RPS" -v b="$RPS" 'BEGIN {d = (b - a) / ((a + b) / 2) * 100; printf "%+.0f", d}')"
        if ((${drift#[+-]} > 10)); then
            echo "           note: the noop's rate moved by ${drift}% between its runs before and after the service's: the machine's speed changed; this ratio is suspect"
        fi
        B_RPS="$(awk -v a="$B_RPS" -v b="$RPS" 'BEGIN {printf "%.0f", (a + b) / 2}')"
        B_MEAN="$(awk -v a="$B_MEAN" -v b="$MEAN" 'BEGIN {printf "%.3f", (a + b) / 2}')"
        B_P50="$(awk -v a="$B_P50" -v b="$P50" 'BEGIN {printf "%.3f", (a + b) / 2}')"
        B_P99="$(awk -v a="$B_P99" -v b="$P99" 'BEGIN {printf "%.3f", (a + b) / 2}')"
        ratio_row "$s" ratio "$S_RPS" "$S_MEAN" "$S_P50" "$S_P99" "$B_RPS" "$B_MEAN" "$B_P50" "$B_P99"
        if ((HALF_RATE)); then
            # Half the service's own maximum: a load it keeps up with, so p50/p99 are service time, not queueing.
            half="$(awk -v r="$S_RPS" 'BEGIN {printf "%.0f", r / 2}')"
            read -r ha0 hb0 hc0 hn0 < <(handling_buckets)
            measure "$name" "$GRPC_PORT" "$service_pid" .half "$half"
            # h2load's p99 includes h2load, the kernel and the VM's wake-ups (the noop's @half p99 shows how much); the
            # service's own histogram says how long the calls took inside it, to the bucket.
            read -r ha1 hb1 hc1 hn1 < <(handling_buckets)
            own="$(awk -v a=$((ha1 - ha0)) -v b=$((hb1 - hb0)) -v c=$((hc1 - hc0)) -v n=$((hn1 - hn0)) 'BEGIN {
                if (n <= 0) { print "none"; exit }
                p = (a >= 0.99 * n) ? "<=0.5" : (b >= 0.99 * n) ? "<=1" : (c >= 0.99 * n) ? "<=2.5" : ">2.5"
                printf "%s %.2f %.2f %.2f", p, a / n * 100, b / n * 100, c / n * 100 }')"
            [[ $own != none ]] || die "$s: grpc_server_handling_seconds did not grow during the half-rate run"
            read -r own_p99 own_a own_b own_c <<<"$own"
            echo "           the service's own timing (grpc_server_handling_seconds): $own_a% of calls within 0.5 ms, $own_b% within 1 ms, $own_c% within 2.5 ms: p99 $own_p99 ms"
            OKS=$((OKS + OK))
            H_RPS=$RPS H_MEAN=$MEAN H_P50=$P50 H_P99=$P99
            H_ROW="$(fmt_row "$s" "${name#legate-}@half" "$RPS" "$MEAN" "$P50" "$P99" "$OK" "$CPU" "$RCPU" "$RCALLS")"
        fi
        after="$(handled_ok)"
        # The service's own count of calls it answered OK must cover every call h2load saw succeed.
        echo "check    grpc_server_handled_total{grpc_service=\"$GRPC_SERVICE\",grpc_method=\"$GRPC_METHOD\",grpc_code=\"OK\"}"
        echo "           grew by $((after - before)) ($before -> $after); h2load successes: $OKS"
        ((after - before >= OKS)) || die "$s: the service counted $((after - before)) OK calls but h2load counted $OKS successes"
        if [[ -n $EXPECT_CODE ]]; then
            # Every call's decision, not only the sampled one: the service's per-rule tallies of the measured calls.
            read -r w1 o1 < <(decisions)
            echo "check    legate_ratelimit_{within,over}_limit_total{domain=\"bench\"} (descriptor hits)"
            echo "           within grew by $((w1 - w0)), over by $((o1 - o0)); h2load successes: $OKS"
            if [[ $EXPECT_CODE == 1 ]]; then
                ((o1 == o0 && w1 - w0 >= OKS)) ||
                    die "$s: every call should have been within its limits, but the service counted $((w1 - w0)) hits within and $((o1 - o0)) over for $OKS calls"
            else
                ((w1 == w0 && o1 - o0 >= OKS)) ||
                    die "$s: every call should have been over its limits, but the service counted $((w1 - w0)) hits within and $((o1 - o0)) over for $OKS calls"
            fi
            verify "$name" "$GRPC_PORT" .after "$EXPECT_CODE"
        fi
        if [[ -n $EXPECT_ALLOW ]]; then
            # Every measured call allowed, not only the sampled one: the service's own decision counters.
            read -r a1 d1 < <(authz_decisions)
            echo "check    legate_authz_decisions_total: allow grew by $((a1 - a0)), deny by $((d1 - d0)); h2load successes: $OKS"
            ((d1 == d0 && a1 - a0 >= OKS)) || die "$s: every call should have been allowed, but the service counted $((a1 - a0)) allows and $((d1 - d0)) denies for $OKS calls"
        fi
        if [[ $s == authz-jwt-distinct ]]; then
            # Before the service's measurement (below, measured after it) and after: the mean, as for the noop.
            verify_after="$(openssl_verify_rate)"
            [[ -n $verify_rate && -n $verify_after ]] || die "could not read 'openssl speed rsa2048' verify/s"
            echo "openssl  rsa2048 verify/s on the service's core: $verify_rate before the service's run, $verify_after after"
            verify_rate="$(awk -v a="$verify_rate" -v b="$verify_after" 'BEGIN {printf "%.0f", (a + b) / 2}')"
            echo "           service req/s / their mean: $(ratio "$S_RPS" "$verify_rate") (target >= 0.5)"
            SUMMARY+=("$(printf "%-${SW}s %-14s %10.0f" "$s" openssl-verify "$verify_rate")")
            SUMMARY+=("$(printf "%-${SW}s %-14s %10s" "$s" ratio-verify "$(ratio "$S_RPS" "$verify_rate")")")
        fi
        # Last, after the checks above (which count the main measurement's calls): more calls change none of them.
        [[ -z $RATE ]] && ((ROUNDS > 0)) && rounds "$name" "$GRPC_PORT"
    fi

    if ((HALF_RATE)); then
        if [[ -n $service_pid ]]; then
            # The noop at the same rate as the service's half-rate run: the same offered load, so the latencies compare.
            measure noop "$NOOP_PORT" "$noop_pid" .half "$half"
            row "$s" noop@half "$RPS" "$MEAN" "$P50" "$P99" "$OK" "$CPU"
            SUMMARY+=("$H_ROW")
            SUMMARY+=("$(printf "%-${SW}s %-14s %10s %9s %9s %9s %10s" "$s" own-time@half "" "" "" "$own_p99" "$own_b%<=1ms")")
            ratio_row "$s" ratio@half "$H_RPS" "$H_MEAN" "$H_P50" "$H_P99" "$RPS" "$MEAN" "$P50" "$P99"
        else
            measure noop "$NOOP_PORT" "$noop_pid" .half "$(awk -v r="$B_RPS" 'BEGIN {printf "%.0f", r / 2}')"
            row "$s" noop@half "$RPS" "$MEAN" "$P50" "$P99" "$OK" "$CPU"
        fi
    fi
    [[ -n $service_pid ]] && stop "$service_pid"
    stop "$noop_pid"
    echo
    header
    printf '%s\n' "${SUMMARY[@]}" | grep "^$s " || true
done

echo
echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ); duration ${DURATION}s, warmup ${WARMUP}s, -c $CONNECTIONS -m $STREAMS${RATE:+, at $RATE req/s with -c $RATE_CONNECTIONS}$( ((HALF_RATE)) && echo ", @half = at half the service's maximum req/s with -c $RATE_CONNECTIONS, own-time@half = the service's own grpc_server_handling_seconds in that run: the bucket its p99 is in, and the share of calls within 1 ms"); ratio = service / noop; ratio-rounds = median of the interleaved rounds' ratios; cpu = server's share of one core; redis_cpu = redis-server's share, redis/call = counter script runs in Redis per call)"
{ header; printf '%s\n' "${SUMMARY[@]}"; } | tee "$OUT/summary.txt"
{
    echo
    echo "warmup req/s per window:"
    for k in "${!WARM_WINDOWS[@]}"; do printf "%-$((SW + 15))s%s\n" "$k" "${WARM_WINDOWS[$k]}"; done | sort
} | tee -a "$OUT/summary.txt"
