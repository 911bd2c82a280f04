#!/usr/bin/env bash
# Benchmark (not a test): the tracker's memory under floods from one hostile host, printed as
# RssAnon (/proc/PID/status) before, during (peak) and after each of:
#   1. 50,000 NOTIFYs, each for a fresh UUID (max-age 10 s), from one address, to a tracker
#      that has seen nothing yet;
#   2. the same again, to the now warmed-up tracker;
#   3. 20,000 NOTIFYs for one UUID whose CONFIGID flaps between 1 and 2, its LOCATION a server
#      that never answers.
# "after" is taken once the flood's entries expired (max-age, plus the tracker's 1 s tick).
# The first flood leaves what a first use of every path costs (the allocator's free lists,
# the tables' smallest sizes); the second shows what a flood leaves behind.
#
# Usage (as root): tests/benches/hostile-tracker.sh [PATH-TO-XENPLUG]
#   default binary: the release artifact (static musl), built by packaging/build-release.sh.
#
# It builds its own network namespaces (xpb-br-PID, xpb-trk-PID, xpb-atk-PID: a bridge and
# two hosts on 10.98.1.0/24), sends nothing anywhere else, and removes them on exit. Bounded:
# about a minute in all, every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/../.."

[ "$(id -u)" = 0 ] || { echo "hostile-tracker.sh: run as root (network namespaces)" >&2; exit 1; }
BIN=${1:-}
if [ -z "$BIN" ]; then
    BIN=$(packaging/build-release.sh)
fi
BIN=$(realpath "$BIN")
FLOOD=$(realpath tests/interop/ssdp_flood.py)

BR=xpb-br-$$ TRK=xpb-trk-$$ ATK=xpb-atk-$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/xpb-hostile-XXXXXX")
cleanup() {
    for ns in "$TRK" "$ATK" "$BR"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
# Killed (Ctrl-C, timeout): exit, which runs the cleanup.
trap 'exit 130' INT TERM

ip netns add "$BR"
ip -n "$BR" link add br0 type bridge mcast_snooping 0
ip -n "$BR" link set br0 up
n=0
for pair in "$TRK:10.98.1.2" "$ATK:10.98.1.12"; do
    ns=${pair%%:*} addr=${pair#*:}
    n=$((n + 1))
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$BR" link add "port$n" type veth peer name eth0 netns "$ns"
    ip -n "$BR" link set "port$n" master br0
    ip -n "$BR" link set "port$n" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 multicast on
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add 224.0.0.0/4 dev eth0
done
sleep 1

mkdir -p "$WORK/repo"
XENPLUG_LOG=info ip netns exec "$TRK" "$BIN" track --net mgmt=eth0:provider \
    --repo "$WORK/repo" --api 127.0.0.1:8700 2>"$WORK/track.log" &
TRACKER=$!
for _ in $(seq 50); do
    grep -q "read API at" "$WORK/track.log" 2>/dev/null && break
    sleep 0.1
done
grep -q "read API at" "$WORK/track.log" || { echo "the tracker did not start:" >&2; cat "$WORK/track.log" >&2; exit 1; }
sleep 3 # its start-up searches are over

rss() { awk '/^RssAnon:/ { print $2 }' "/proc/$TRACKER/status"; }

# Runs one flood in the attacker's namespace, sampling the tracker's RssAnon every 100 ms;
# prints the peak.
during() {
    local peak=0 value
    ip netns exec "$ATK" /usr/bin/python3 "$FLOOD" "$@" --addr 10.98.1.12 --iface eth0 \
        >"$WORK/flood.out" &
    local flood=$!
    while kill -0 "$flood" 2>/dev/null; do
        value=$(rss)
        [ "$value" -gt "$peak" ] && peak=$value
        sleep 0.1
    done
    wait "$flood"
    value=$(rss)
    [ "$value" -gt "$peak" ] && peak=$value
    echo "$peak"
}

row() { printf '%-42s %10s %10s %10s %9s\n' "$@"; }
verdict() { # before after
    awk -v b="$1" -v a="$2" 'BEGIN { d = (a - b) * 100 / b; printf "%+.1f%%", d }'
}

echo "tracker: $BIN (pid $TRACKER)"
row "flood" "before" "peak" "after" "after/bef"
row "" "KiB" "KiB" "KiB" ""

uuid_flood() { # label
    local before peak after t0 t1
    before=$(rss)
    t0=$(date +%s.%N)
    peak=$(during uuids --count 50000 --seconds 5 --max-age 10)
    t1=$(date +%s.%N)
    sleep 13 # max-age 10 s after the last NOTIFY, the 1 s tick, a margin
    after=$(rss)
    row "$1" "$before" "$peak" "$after" "$(verdict "$before" "$after")"
    echo "  (sent in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s; after = 13 s later)"
}

uuid_flood "50,000 fresh UUIDs, cold tracker"
uuid_flood "50,000 fresh UUIDs again, warmed up"

before=$(rss)
peak=$(during flap --udn uuid:f1a9f1a9-0000-4000-8000-000000000001 --count 20000 --seconds 4 \
    --max-age 5 --linger 2)
grep -o '"accepted": [0-9]*' "$WORK/flood.out" | sed 's/"accepted"/  its LOCATION fetched (times)/'
sleep 8
after=$(rss)
row "20,000-datagram CONFIGID flap, one UUID" "$before" "$peak" "$after" "$(verdict "$before" "$after")"

echo
echo "tracker warnings:"
grep -E " (warn|error): " "$WORK/track.log" | sed 's/^/  /' | cut -c1-200 || true
kill "$TRACKER" 2>/dev/null || true
wait "$TRACKER" 2>/dev/null || true
