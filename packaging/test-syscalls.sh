#!/usr/bin/env bash
# The systemd units of the tracker and the web console allow only the system calls of
# @system-service without @privileged and @resources (SystemCallFilter; any other call fails
# with EPERM). This machine's init is not systemd, so the units cannot run here; instead the
# two roles run under strace in a network namespace of their own (lo only), with a simulated
# hypervisor and a VM advertiser for the tracker to discover, describe and subscribe to; they
# are used (API, page, sign-in, a refused action, SIGHUP, SIGTERM), and every system call they
# made must be one the filter allows.
#
#   packaging/test-syscalls.sh [PROGRAM]      (default /usr/bin/xenplug; root, strace, curl)
set -euo pipefail
cd "$(dirname "$0")/.."
program=$(realpath "${1:-/usr/bin/xenplug}")
work=$(realpath -m target/test-syscalls)
rm -rf "$work"
mkdir -p "$work/sim" "$work/services" "$work/repo" "$work/state-h" "$work/state-v"
ns=xp-sys-$$
pids=()

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        timeout 10 tail --pid="$pid" -f /dev/null || kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT

fail() {
    echo "test-syscalls: $*" >&2
    tail -n 20 "$work"/*.log >&2 || true
    exit 1
}

# The system calls a SystemCallFilter group holds, its nested groups expanded.
expand() {
    local item
    for item in $(systemd-analyze syscall-filter "$1" | awk 'NR > 1 && $1 !~ /^#/ { print $1 }'); do
        case $item in
            @*) expand "$item" ;;
            *) echo "$item" ;;
        esac
    done
}

# Runs COMMAND... in the namespace in the background, its output in LOG.
spawn() {
    local log=$1
    shift
    ip netns exec "$ns" "$@" >"$work/$log" 2>&1 &
    pids+=($!)
}

# Polls COMMAND... for up to 20 s.
eventually() {
    local i
    for i in $(seq 100); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

in_ns() {
    ip netns exec "$ns" "$@"
}

ip netns add "$ns"
in_ns ip link set lo up
printf 'uuid=0b5e1c2a-3333-4a6b-8c9d-0000000000f3\nname=syscalls\n' >"$work/sim/host"
printf 'uuid=0b5e1c2a-4444-4a6b-8c9d-0000000000f4\nname=vm1\nstate=running\nmemory_kib=1048576\nvcpus=1\n' \
    >"$work/sim/vm1.domain"
cp -r packaging/services/SystemInfo "$work/services/"
"$program" access new admin admin --file "$work/access" >"$work/admin.token" 2>/dev/null
token=$(cat "$work/admin.token")

spawn hypervisor.log "$program" advertise hypervisor --iface lo --backend sim \
    --sim-dir "$work/sim" --state-dir "$work/state-h"
spawn vm.log "$program" advertise vm --iface lo --uuid 0b5e1c2a-4444-4a6b-8c9d-0000000000f4 \
    --services "$work/services" --state-dir "$work/state-v"
spawn track.log strace -f -qq -o "$work/track.trace" "$program" track \
    --net mgmt=lo:provider --net acme=lo --repo "$work/repo" --api 127.0.0.1:8700 \
    --access "$work/access"
tracker_pid=${pids[-1]}
# (With --iface the console logs errors only unless XENPLUG_LOG says otherwise.)
spawn console.log env XENPLUG_LOG=info strace -f -qq -o "$work/console.trace" "$program" console serve \
    --listen 127.0.0.1:8780 --tracker http://127.0.0.1:8700 --iface lo --access "$work/access"
console_pid=${pids[-1]}

auth=(-H "Authorization: Bearer $token")
known() {
    in_ns curl -sf "${auth[@]}" "$1" | grep -q 0b5e1c2a-4444-4a6b-8c9d-0000000000f4
}
eventually known http://127.0.0.1:8700/api/tree || fail "the tracker never listed the VM"
eventually known http://127.0.0.1:8780/api/tree || fail "the console never listed the VM"
in_ns curl -s -o /dev/null http://127.0.0.1:8780/
in_ns curl -s -o /dev/null "${auth[@]}" http://127.0.0.1:8780/api/whoami
in_ns curl -s -o /dev/null -H "Authorization: Bearer wrong" http://127.0.0.1:8700/api/tree
in_ns curl -s -o /dev/null "${auth[@]}" -H "Origin: http://127.0.0.1:8700" \
    -d 'service=urn:xenplug-org:service:DomainControl:1&action=Pause' \
    http://127.0.0.1:8700/api/vms/0b5e1c2a-4444-4a6b-8c9d-0000000000f4/actions
for pid in "$tracker_pid" "$console_pid"; do
    # strace's child is the program.
    kill -HUP "$(pgrep -P "$pid")"
done
eventually grep -q "SIGHUP" "$work/track.log" || fail "the tracker did not log its SIGHUP"
eventually grep -q "SIGHUP" "$work/console.log" || fail "the console did not log its SIGHUP"
for pid in "$tracker_pid" "$console_pid"; do
    kill -TERM "$(pgrep -P "$pid")"
done
for pid in "$tracker_pid" "$console_pid"; do
    wait "$pid" || fail "a role under strace did not stop cleanly"
done

expand @system-service | sort -u >"$work/system-service"
{ expand @privileged; expand @resources; } | sort -u >"$work/denied"
comm -23 "$work/system-service" "$work/denied" >"$work/allowed"
status=0
for role in track console; do
    sed -n 's/^[0-9][0-9]* \([a-z0-9_]*\)(.*/\1/p' "$work/$role.trace" | sort -u >"$work/$role.used"
    outside=$(comm -23 "$work/$role.used" "$work/allowed" | tr '\n' ' ')
    echo "$role: $(wc -l <"$work/$role.used") distinct system calls${outside:+; NOT ALLOWED: $outside}"
    [ -z "$outside" ] || status=1
done
[ "$status" = 0 ] || fail "the units' SystemCallFilter would refuse the calls above"
