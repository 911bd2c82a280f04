#!/usr/bin/env bash
# Benchmark: how much an SSDP search flood gets back from `xenplug advertise hypervisor`, per
# search target, from one source address and from 1,000. Prints a table; asserts nothing.
#
#   sudo tests/benches/hostile.sh [RATE] [SECONDS]     (default 2000 searches/s for 5 s)
#
# It builds its own network namespaces (a device and an attacker joined by a veth pair on
# 10.98.0.0/16), gives the attacker 1,000 extra addresses so every answer reaches it, and runs
# a simulated host with 20 domains (64 search targets, like a 100-byte ssdp:all answered with
# 64 replies). Each run starts a fresh device, floods it with tests/interop/hostile.py for
# SECONDS, waits for the answers to drain, and reads the device's interface counters:
# amplification = bytes the device sent / bytes it received. Nothing leaves the namespaces;
# everything is bounded (10 runs of about SECONDS + 6 s) and removed on exit. Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/../.."

RATE="${1:-2000}"
SECONDS_FLOOD="${2:-5}"
SOURCES_FIRST=10.98.100.1
TAG="xp-bench-$$"
DEV="$TAG-dev"
ATK="$TAG-atk"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/xenplug-hostile-XXXXXXXX")"
HOST_UUID=5f0c7a2e-8d1b-4c3e-9a7f-0123456789ab
PYTHON=/usr/bin/python3
PID=

[ "$(id -u)" = 0 ] || { echo "hostile.sh: needs root (network namespaces)" >&2; exit 1; }
BIN="${XENPLUG_BIN:-target/release/xenplug}"
if [ ! -x "$BIN" ]; then
    cargo build --release --bin xenplug >&2
fi

cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    for ns in "$DEV" "$ATK"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$DEV"
ip netns add "$ATK"
for ns in "$DEV" "$ATK"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip -n "$DEV" link add veth0 type veth peer name atk0 netns "$ATK"
ip -n "$DEV" addr add 10.98.0.1/16 dev veth0
ip -n "$ATK" addr add 10.98.0.2/16 dev atk0
link_up() {
    ip -n "$1" link set "$2" multicast on
    ip -n "$1" link set "$2" up
    ip -n "$1" route add 224.0.0.0/4 dev "$2"
}
link_up "$DEV" veth0
link_up "$ATK" atk0
"$PYTHON" - "$SOURCES_FIRST" > "$WORK/addresses.batch" <<'EOF'
import ipaddress, sys
first = ipaddress.IPv4Address(sys.argv[1])
for n in range(1000):
    print("addr add %s/16 dev atk0" % (first + n))
EOF
ip -n "$ATK" -batch "$WORK/addresses.batch"

mkdir -p "$WORK/sim"
printf 'uuid=%s\nname=bench\n' "$HOST_UUID" > "$WORK/sim/host"
for n in $(seq 1 20); do
    printf 'uuid=0b5e1c2a-0000-4a6b-8c9d-%012d\nname=vm%d\nstate=running\nmemory_kib=1048576\nvcpus=1\n' \
        "$n" "$n" > "$WORK/sim/vm$n.domain"
done

start_device() {
    rm -rf "$WORK/state"
    mkdir -p "$WORK/state"
    ip netns exec "$DEV" "$BIN" advertise hypervisor --iface veth0 --backend sim \
        --sim-dir "$WORK/sim" --state-dir "$WORK/state" 2> "$WORK/xenplug.log" &
    PID=$!
    for _ in $(seq 1 100); do
        grep -q "description at" "$WORK/xenplug.log" && return 0
        sleep 0.1
    done
    echo "hostile.sh: xenplug did not start:" >&2
    cat "$WORK/xenplug.log" >&2
    exit 1
}

stop_device() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
}

counter() {
    ip netns exec "$DEV" cat "/sys/class/net/veth0/statistics/$1"
}

printf 'xenplug %s, 20 domains (64 targets); flood: %s searches/s for %s s\n\n' \
    "$BIN" "$RATE" "$SECONDS_FLOOD"
printf '%-42s %7s %12s %12s %8s\n' "search target" "sources" "received B" "sent B" "amplif."
for st in ssdp:all upnp:rootdevice "uuid:$HOST_UUID" urn:xenplug-org:device:Domain:1 \
    urn:xenplug-org:service:DomainControl:1; do
    for sources in 1 1000; do
        start_device
        if [ "$sources" = 1 ]; then
            from=(--source 10.98.0.2)
        else
            from=(--sources-from "$SOURCES_FIRST" --sources 1000)
        fi
        rx0=$(counter rx_bytes)
        tx0=$(counter tx_bytes)
        timeout $((SECONDS_FLOOD + 30)) ip netns exec "$ATK" "$PYTHON" tests/interop/hostile.py \
            ssdp-flood --target 10.98.0.1 --st "$st" "${from[@]}" \
            --rate "$RATE" --seconds "$SECONDS_FLOOD" --drain 3.5 > "$WORK/flood.json"
        rx1=$(counter rx_bytes)
        tx1=$(counter tx_bytes)
        stop_device
        rx=$((rx1 - rx0))
        tx=$((tx1 - tx0))
        printf '%-42s %7s %12s %12s %8s\n' "$st" "$sources" "$rx" "$tx" \
            "$(awk -v tx="$tx" -v rx="$rx" 'BEGIN { printf "%.2f", rx ? tx / rx : 0 }')"
    done
done
