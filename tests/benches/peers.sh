#!/usr/bin/env bash
# Benchmark: xenplug's roles against miniupnpd and GUPnP (gupnp-network-light under Xvfb),
# side by side in one run on this machine. Prints one table; asserts nothing. Not run by CI.
#
#   sudo tests/benches/peers.sh          (about 7 minutes; stops itself after 15)
#
# XENPLUG_BIN=PATH runs that binary, else packaging/build-release.sh builds the default musl
# artifact. What is missing (wrk, miniupnpd, gupnp-tools, Xvfb) is installed with apt-get,
# without starting any service (policy-rc.d).
#
# Network: each subject runs alone in a namespace of its own, on a bridge to four client
# namespaces (10.78.N.0/24: the subject .1, clients .10-.13), so that nothing one subject sends
# wakes another. Subjects: `advertise hypervisor` with 10, 100 and 1,000 sim domains,
# `advertise vm` with the two example services, miniupnpd, gupnp-network-light, and the
# reference server (tests/benches/reference_server.rs: one thread, blocking calls, the VM's
# description as ready-made bytes; measured with one connection only, where it is the most any
# server can do here, since each request waits for the previous answer); the tracker
# (client 0) follows the 100-domain host and the VM, `console watch` and `console serve` follow
# the tracker. Nothing leaves the namespaces; all of them and every process in them are removed
# on exit.
#
# Measured:
# - description GET: wrk -t1 for 3 s with 1 and 16 connections from one client, and 64 from
#   four (16 each: xenplug serves at most 16 connections of one address at once, a bound it
#   keeps on purpose), without keep-alive (Connection: close) and with it, every subject in
#   turn, twice; the better round's req/s and latency p50/p99 (worst client's p99 for 64), and
#   the subject's CPU per 10,000 requests over both;
# - ssdp:all: replies to one M-SEARCH (MX 1) and when the last one came;
# - memory after start-up: VmRSS and RssAnon (/proc/PID/status), Pss (smaps_rollup);
# - idle: CPU seconds a minute and context switches a second over 60 s, every thread (perf
#   stat when it is installed, else the threads alive at both ends, marked *), every subject
#   at once while nothing changes;
# - reaction (30 trials each, tests/benches/peers.py react): a sim domain file rewritten ->
#   the Domain's GENA event and the tracker's journal line; a domain file added -> its
#   ssdp:alive and the journal's vm-added; journal line -> a waiting GET /api/events answer and
#   the `console watch` line.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

[ "$(id -u)" = 0 ] || { echo "peers.sh: needs root (network namespaces, apt-get)" >&2; exit 1; }
if [ -z "${PEERS_SH_BOUNDED:-}" ]; then
    export PEERS_SH_BOUNDED=1
    exec timeout --kill-after=10 900 "$0" "$@"
fi

TAG="xpb$$"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/xenplug-peers-XXXXXXXX")"
PYTHON=/usr/bin/python3
SUBJECTS=(hv10 hv100 hv1000 vm miniupnpd gupnp reference)
CLIENTS=4
DISPLAY_NUMBER=$((90 + $$ % 100))
DURATION=3
IDLE_SECONDS=60
TRIALS=30
declare -A NET PID URL DESC
POLICY_RC_ADDED=

say() { printf '%s\n' "$*" >&2; }

cleanup() {
    set +e
    for ns in $(ip netns list | awk '{print $1}' | grep "^$TAG-"); do
        for pid in $(ip netns pids "$ns"); do kill "$pid" 2>/dev/null; done
    done
    sleep 0.5
    for ns in $(ip netns list | awk '{print $1}' | grep "^$TAG-"); do
        for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null; done
        ip netns del "$ns"
    done
    [ -n "$POLICY_RC_ADDED" ] && rm -f /usr/sbin/policy-rc.d
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- what is needed --------------------------------------------------------------------------

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v miniupnpd >/dev/null || [ -x /usr/sbin/miniupnpd ] || missing+=(miniupnpd-nftables)
command -v gupnp-network-light >/dev/null || missing+=(gupnp-tools)
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
    say "peers.sh: installing ${missing[*]}"
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        # No daemon starts on the host because of this install (miniupnpd's would).
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_ADDED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >&2
fi
MINIUPNPD=$(command -v miniupnpd || echo /usr/sbin/miniupnpd)

BIN="${XENPLUG_BIN:-}"
if [ -z "$BIN" ]; then
    BIN="$ROOT/$(packaging/build-release.sh)"
fi
BIN=$(readlink -f "$BIN")
say "peers.sh: building the reference server"
REFERENCE=$(cargo build --release --locked --bench reference_server --message-format=json \
    2> /dev/null | "$PYTHON" -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") \
            and message["target"]["name"] == "reference_server":
        print(message["executable"])')
[ -x "$REFERENCE" ] || { say "peers.sh: the reference server did not build"; exit 1; }

# ---- namespaces --------------------------------------------------------------------------------

ns_of() { echo "$TAG-$1"; }
client() { echo "$TAG-c$1"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

for k in $(seq 0 $((CLIENTS - 1))); do
    ip netns add "$(client "$k")"
    ip -n "$(client "$k")" link set lo up
    in_ns "$(client "$k")" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="10000 65000"
done
n=0
for subject in "${SUBJECTS[@]}"; do
    n=$((n + 1))
    NET[$subject]=$n
    ns=$(ns_of "$subject")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    in_ns "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.core.somaxconn=4096
    ip -n "$ns" link add br0 type bridge mcast_snooping 0
    ip -n "$ns" addr add "10.78.$n.1/24" dev br0
    ip -n "$ns" link set br0 up
    ip -n "$ns" route add 224.0.0.0/4 dev br0
    for k in $(seq 0 $((CLIENTS - 1))); do
        ip -n "$ns" link add "c$k" type veth peer name "s$n" netns "$(client "$k")"
        ip -n "$ns" link set "c$k" master br0 up
        ip -n "$(client "$k")" addr add "10.78.$n.$((10 + k))/24" dev "s$n"
        ip -n "$(client "$k")" link set "s$n" up
    done
done
address() { echo "10.78.${NET[$1]}.1"; }
client_address() { echo "10.78.${NET[$2]}.$((10 + $1))"; }

# ---- subjects ----------------------------------------------------------------------------------

wait_http() {
    for _ in $(seq 1 200); do
        in_ns "$(client 0)" curl -s -o /dev/null -m 1 "$1" && return 0
        sleep 0.1
    done
    say "peers.sh: nothing answers $1"
    exit 1
}

start_hypervisor() {
    local subject=$1 domains=$2 dir="$WORK/$1"
    mkdir -p "$dir/sim" "$dir/state"
    printf 'uuid=5f0c7a2e-8d1b-4c3e-9a7f-%012d\nname=%s\n' "$domains" "$subject" > "$dir/sim/host"
    for i in $(seq 1 "$domains"); do
        printf 'uuid=0b5e1c2a-%04d-4a6b-8c9d-%012d\nname=vm%d\nstate=running\nmemory_kib=1048576\nvcpus=1\n' \
            "$domains" "$i" "$i" > "$dir/sim/vm$i.domain"
    done
    ip netns exec "$(ns_of "$subject")" "$BIN" advertise hypervisor --iface br0 --backend sim \
        --sim-dir "$dir/sim" --state-dir "$dir/state" --http-port 8080 2> "$dir/log" &
    PID[$subject]=$!
    URL[$subject]="http://$(address "$subject"):8080/description.xml"
}

start_hypervisor hv10 10
start_hypervisor hv100 100
start_hypervisor hv1000 1000

mkdir -p "$WORK/vm/state"
cp -r packaging/services "$WORK/vm/services"
ip netns exec "$(ns_of vm)" "$BIN" advertise vm --iface br0 --uuid 7c3f0d6e-1a2b-4c5d-8e9f-0a1b2c3d4e5f \
    --name bench --services "$WORK/vm/services" --state-dir "$WORK/vm/state" --http-port 8080 \
    2> "$WORK/vm/log" &
PID[vm]=$!
URL[vm]="http://$(address vm):8080/description.xml"

cat > "$WORK/miniupnpd.conf" <<EOF
ext_ifname=br0
listening_ip=br0
port=8080
enable_natpmp=no
enable_upnp=yes
secure_mode=yes
notify_interval=900
uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b
allow 1024-65535 10.78.0.0/16 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
# Daemonized as it runs in production (-d would log every request to stderr as well).
ip netns exec "$(ns_of miniupnpd)" "$MINIUPNPD" -f "$WORK/miniupnpd.conf" -P "$WORK/miniupnpd.pid"
for _ in $(seq 1 50); do [ -s "$WORK/miniupnpd.pid" ] && break; sleep 0.1; done
PID[miniupnpd]=$(cat "$WORK/miniupnpd.pid")
URL[miniupnpd]="http://$(address miniupnpd):8080/rootDesc.xml"

ip netns exec "$(ns_of gupnp)" Xvfb ":$DISPLAY_NUMBER" -nolisten tcp -nolisten unix \
    > "$WORK/xvfb.log" 2>&1 &
sleep 1
ip netns exec "$(ns_of gupnp)" env DISPLAY=":$DISPLAY_NUMBER" NO_AT_BRIDGE=1 gupnp-network-light \
    -p 8080 -i br0 -4 > "$WORK/gupnp.log" 2>&1 &
PID[gupnp]=$!

for subject in hv10 hv100 hv1000 vm miniupnpd; do
    wait_http "${URL[$subject]}"
done
in_ns "$(client 0)" curl -s "${URL[vm]}" > "$WORK/reference.xml"
ip netns exec "$(ns_of reference)" "$REFERENCE" "$(address reference):8080" "$WORK/reference.xml" \
    2> "$WORK/reference.log" &
PID[reference]=$!
URL[reference]="http://$(address reference):8080/description.xml"
wait_http "${URL[reference]}"
URL[gupnp]=$(in_ns "$(client 0)" "$PYTHON" tests/benches/peers.py locate \
    --address "$(client_address 0 gupnp)" --subject "$(address gupnp)")
wait_http "${URL[gupnp]}"
for subject in "${SUBJECTS[@]}"; do
    DESC[$subject]=$(in_ns "$(client 0)" curl -s "${URL[$subject]}" | wc -c)
done

# The tracker (client 0) on the 100-domain host's network and the VM's, and two consoles.
API="http://$(client_address 0 hv100):8700"
mkdir -p "$WORK/repo"
ip netns exec "$(client 0)" "$BIN" track --net "mgmt=s${NET[hv100]}:provider" --net "acme=s${NET[vm]}" \
    --repo "$WORK/repo" --api "$(client_address 0 hv100):8700" 2> "$WORK/track.log" &
PID[tracker]=$!
wait_http "$API/api/tree"
ip netns exec "$(client 0)" "$BIN" console watch --tracker "$API" > /dev/null 2> "$WORK/watch.log" &
PID[watch]=$!
ip netns exec "$(client 0)" "$BIN" console serve --listen "$(client_address 0 hv100):8780" \
    --tracker "$API" > /dev/null 2> "$WORK/serve.log" &
PID[serve]=$!
COLUMNS=(hv10 hv100 hv1000 vm tracker watch serve miniupnpd gupnp reference)

# Discovery, descriptions and subscriptions settle (the tracker's journal stops growing for
# 5 s, at most a minute); the 1,000-domain host's announcements are over by then.
for _ in $(seq 1 100); do
    in_ns "$(client 0)" curl -s "$API/api/tree" | grep -q '"7c3f0d6e-1a2b-4c5d-8e9f-0a1b2c3d4e5f"' \
        && break
    sleep 0.2
done
quiet=0
for _ in $(seq 1 60); do
    size=$(stat -c %s "$WORK/repo/events.log")
    sleep 1
    if [ "$(stat -c %s "$WORK/repo/events.log")" = "$size" ]; then
        quiet=$((quiet + 1))
        [ "$quiet" -ge 5 ] && break
    else
        quiet=0
    fi
done

# ---- measurements ------------------------------------------------------------------------------

TICKS=$(getconf CLK_TCK)
# CPU ticks of a process, every thread included (also those that ended: /proc/PID/stat).
cpu_ticks() {
    local fields
    fields=$(sed 's/.*) //' /proc/"$1"/stat)
    set -- $fields
    echo $((${12} + ${13}))
}
# Context switches of the threads of a process that are alive now (those that ended are not
# counted; perf, when there, counts them).
live_switches() {
    local switches=0 task
    for task in /proc/"$1"/task/*; do
        switches=$((switches + $(awk '/ctxt_switches/ {s += $2} END {print s + 0}' "$task/status" \
            2>/dev/null || echo 0)))
    done
    echo "$switches"
}
PERF=$(command -v perf || true)
status_kib() { awk -v key="$2:" '$1 == key {print $2}' /proc/"$1"/status; }
pss_kib() { awk '$1 == "Pss:" {print $2}' /proc/"$1"/smaps_rollup; }

declare -A R
for column in "${COLUMNS[@]}"; do
    pid=${PID[$column]}
    R[$column,rss]="$(status_kib "$pid" VmRSS)/$(status_kib "$pid" RssAnon)/$(pss_kib "$pid")"
done

say "peers.sh: idle for $IDLE_SECONDS s"
declare -A CPU0 CTX0
watchers=()
for column in "${COLUMNS[@]}"; do
    CPU0[$column]=$(cpu_ticks "${PID[$column]}")
    CTX0[$column]=$(live_switches "${PID[$column]}")
    if [ -n "$PERF" ]; then
        # Counts every thread of the process, those it starts meanwhile included.
        "$PERF" stat -x, -e context-switches -p "${PID[$column]}" -o "$WORK/perf.$column" \
            -- sleep "$IDLE_SECONDS" 2> /dev/null &
        watchers+=($!)
    fi
done
sleep "$IDLE_SECONDS"
[ ${#watchers[@]} -gt 0 ] && wait "${watchers[@]}" || true
for column in "${COLUMNS[@]}"; do
    ticks=$(($(cpu_ticks "${PID[$column]}") - CPU0[$column]))
    R[$column,idle_cpu]=$(awk -v t="$ticks" -v hz="$TICKS" -v s="$IDLE_SECONDS" \
        'BEGIN {printf "%.3f", t / hz * 60 / s}')
    # perf says "<not counted>" of a process that never ran meanwhile: no switch at all.
    switches=$(awk -F, '$3 == "context-switches" && $1 ~ /^[0-9]+$/ {print $1}
        $3 == "context-switches" && $1 == "<not counted>" {print 0}' \
        "$WORK/perf.$column" 2>/dev/null || true)
    mark=
    if [ -z "$switches" ]; then
        switches=$(($(live_switches "${PID[$column]}") - CTX0[$column]))
        [ "$switches" -lt 0 ] && switches=0
        mark='*'
    fi
    R[$column,idle_ctx]=$(awk -v n="$switches" -v s="$IDLE_SECONDS" -v m="$mark" \
        'BEGIN {printf "%.2f%s", n / s, m}')
done

say "peers.sh: ssdp:all"
for subject in "${SUBJECTS[@]}"; do
    [ "$subject" = reference ] && continue
    json=$(in_ns "$(client 1)" "$PYTHON" tests/benches/peers.py ssdp-all \
        --address "$(client_address 1 "$subject")" --subject "$(address "$subject")")
    R[$subject,ssdp]=$(echo "$json" | "$PYTHON" -c \
        'import json,sys; r=json.load(sys.stdin); print("%d/%s" % (r["count"], r.get("last_ms", "-")))')
    sleep 1
done

# One wrk run; prints "requests req/s p50_ms p99_ms".
wrk_run() {
    local k=$1 connections=$2 mode=$3 url=$4 extra=()
    [ "$mode" = close ] && extra=(-H "Connection: close")
    in_ns "$(client "$k")" wrk -t1 -c"$connections" -d"${DURATION}s" --latency "${extra[@]}" "$url" \
        | awk '
            function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
                             if (v ~ /s$/) return v * 1000; return v }
            /requests in/ {requests = $1}
            /Requests\/sec/ {rate = $2}
            $1 == "50%" {p50 = ms($2)}
            $1 == "99%" {p99 = ms($2)}
            END {printf "%d %.0f %.2f %.2f\n", requests, rate, p50, p99}'
}

say "peers.sh: description GET with wrk (2 rounds)"
declare -A SPENT SERVED
for round in 1 2; do
    for mode in close keepalive; do
        for connections in 1 16 64; do
            for subject in "${SUBJECTS[@]}"; do
                # It serves one connection at a time.
                [ "$subject" = reference ] && [ "$connections" != 1 ] && continue
                pid=${PID[$subject]}
                t0=$(cpu_ticks "$pid")
                if [ "$connections" = 64 ]; then
                    runs=()
                    for k in $(seq 0 $((CLIENTS - 1))); do
                        wrk_run "$k" 16 "$mode" "${URL[$subject]}" > "$WORK/wrk.$k" &
                        runs+=($!)
                    done
                    wait "${runs[@]}"
                    # Requests and rates add up; the median client's p50, the worst's p99.
                    read -r requests rate p50 p99 <<< "$(cat "$WORK"/wrk.? | "$PYTHON" -c '
import sys
rows = [line.split() for line in sys.stdin if line.strip()]
p50 = sorted(float(r[2]) for r in rows)
print(sum(int(r[0]) for r in rows), round(sum(float(r[1]) for r in rows)),
      "%.2f" % p50[(len(p50) - 1) // 2], "%.2f" % max(float(r[3]) for r in rows))')"
                else
                    read -r requests rate p50 p99 <<< \
                        "$(wrk_run 1 "$connections" "$mode" "${URL[$subject]}")"
                fi
                SPENT[$subject,$mode]=$((${SPENT[$subject,$mode]:-0} + $(cpu_ticks "$pid") - t0))
                SERVED[$subject,$mode]=$((${SERVED[$subject,$mode]:-0} + requests))
                # The better of the two rounds: the machine may be busy with something else.
                if [ "$rate" -gt "${R[$subject,$mode,$connections]:-0}" ]; then
                    R[$subject,$mode,$connections]="$rate"
                    R[$subject,$mode,$connections,lat]="$p50/$p99"
                fi
                sleep 0.5
            done
        done
    done
done
for subject in "${SUBJECTS[@]}"; do
    for mode in close keepalive; do
        R[$subject,$mode,cpu]=$(awk -v t="${SPENT[$subject,$mode]}" -v hz="$TICKS" \
            -v n="${SERVED[$subject,$mode]}" \
            'BEGIN {if (n > 0) printf "%.3f", t / hz / n * 10000; else print "-"}')
    done
done

say "peers.sh: reaction, $TRIALS trials"
react=$(in_ns "$(client 1)" "$PYTHON" tests/benches/peers.py react \
    --address "$(client_address 1 hv100)" --iface "s${NET[hv100]}" --device "http://$(address hv100):8080" \
    --sim "$WORK/hv100/sim" --journal "$WORK/repo/events.log" --api "$API" --xenplug "$BIN" \
    --trials "$TRIALS")
pick() { echo "$react" | "$PYTHON" -c \
    'import json,sys; r=json.load(sys.stdin)[sys.argv[1]]; print("-" if r is None else "%s/%s" % (r["p50"], r["p99"]))' "$1"; }
R[hv100,gena]=$(pick gena)
R[hv100,alive]=$(pick alive)
R[tracker,journal]=$(pick journal)
R[tracker,added]=$(pick added)
R[tracker,long_poll]=$(pick long_poll)
R[watch,watch]=$(pick watch)
missed=$(echo "$react" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["missed"])')

# ---- the table ---------------------------------------------------------------------------------

model=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
printf '\n%s (%s, %s bytes) | %s | %s, %s CPUs, Linux %s, load %s\n' \
    "$("$BIN" --version 2>/dev/null | head -1)" "$BIN" "$(stat -c %s "$BIN")" \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$model" "$(nproc)" "$(uname -r)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'peers: miniupnpd %s, gupnp-network-light (libgupnp %s), %s\n' \
    "$(dpkg-query -W -f='${Version}' miniupnpd-nftables 2>/dev/null || echo '?')" \
    "$(dpkg-query -W -f='${Version}' libgupnp-1.6-0 2>/dev/null || echo '?')" \
    "$(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
printf 'wrk -t1 -d%ss, the better of 2 rounds; c64 = 4 clients x 16; latency p50/p99 ms; reaction p50/p99 ms over %s trials (%s missed)\n' \
    "$DURATION" "$TRIALS" "$missed"
printf 'context switches: %s\n\n' \
    "$([ -n "$PERF" ] && echo 'perf stat, every thread' || echo 'live threads only (no perf)')"
row() {
    local label=$1 key=$2 column value
    printf '%-34s' "$label"
    for column in "${COLUMNS[@]}"; do
        value=${R[$column,$key]:-}
        printf ' %15s' "${value:--}"
    done
    printf '\n'
}
printf '%-34s' ""
for column in "${COLUMNS[@]}"; do printf ' %15s' "$column"; done
printf '\n%-34s' "description bytes"
for column in "${COLUMNS[@]}"; do printf ' %15s' "${DESC[$column]:--}"; done
printf '\n'
for mode in close keepalive; do
    for connections in 1 16 64; do
        row "GET req/s, $mode, c$connections" "$mode,$connections"
        row "  p50/p99 ms" "$mode,$connections,lat"
    done
    row "CPU s per 10k requests, $mode" "$mode,cpu"
done
row "ssdp:all replies/last ms" ssdp
row "VmRSS/RssAnon/Pss KiB" rss
row "idle CPU s/min (${IDLE_SECONDS} s)" idle_cpu
row "idle context switches/s" idle_ctx
row "file -> GENA event ms" gena
row "file -> ssdp:alive ms" alive
row "file -> journal line ms" journal
row "new domain -> journal vm-added ms" added
row "journal -> /api/events answer ms" long_poll
row "journal -> console watch line ms" watch
