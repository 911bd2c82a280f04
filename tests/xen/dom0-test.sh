#!/bin/sh
# What the real-Xen test checks in one boot, run by dom0's /init once the toolstack is up
# (busybox sh). The Xen release is in /etc/xen-release.
#
# 1. The dom0 build (/opt/libxl/xenplug, when the image has it) with --backend auto: on the
#    release it links it picks libxl, and /checks.sh runs every check with the libxl backend;
#    on any other release it picks xl, and `--backend libxl` must refuse to start with one
#    line naming both releases and --backend xl.
# 2. The default build (/usr/local/bin/xenplug, static musl) with --backend auto picks xl,
#    then /checks.sh runs every check with the xl backend.
#
# Lines for the test: XENPLUG-PASS / XENPLUG-FAIL, `release: <check>` for the checks here and
# `<backend>: <check>` for /checks.sh's. Exits with the number of failures.

DEFAULT_BIN=/usr/local/bin/xenplug
LIBXL_BIN=/opt/libxl/xenplug
PROBE_PORT=49160
failures=0

up() { cut -d' ' -f1 /proc/uptime; }
pass() { echo "XENPLUG-PASS release: $* (at $(up) s)"; }
fail() {
    echo "XENPLUG-FAIL release: $* (at $(up) s)"
    failures=$((failures + 1))
}

# auto_choice BIN LABEL: starts `BIN advertise hypervisor --backend auto`, waits (at most 60 s)
# for its line saying which backend it chose, stops it, and prints that line.
auto_choice() {
    local log=/tmp/auto-$2.log state=/tmp/auto-$2-state pid n=0
    mkdir -p "$state"
    XENPLUG_LOG=info "$1" advertise hypervisor --backend auto --iface lo --state-dir "$state" \
        --http-port "$PROBE_PORT" 2>"$log" &
    pid=$!
    while [ "$n" -lt 240 ] && ! grep -q -- "--backend auto" "$log" && kill -0 "$pid" 2>/dev/null; do
        sleep 0.25
        n=$((n + 1))
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    grep -m1 -- "--backend auto" "$log" || tail -n 3 "$log" | tr '\n' ' '
    rm -rf "$state"
}

echo "XENPLUG-STEP Xen $XEN_RELEASE, xl says $(xl info 2>/dev/null | sed -n 's/^xen_version *: //p') at $(up) s"

# --- 1. the dom0 build: libxl on its own release, a clear refusal on any other --------------
if [ -x "$LIBXL_BIN" ]; then
    choice=$(auto_choice "$LIBXL_BIN" dom0)
    case $choice in
    *"--backend auto: libxl"*)
        pass "auto with the dom0 build picks libxl on Xen $XEN_RELEASE: $choice"
        /checks.sh libxl "$LIBXL_BIN"
        failures=$((failures + $?))
        ;;
    *"--backend auto: xl"*"built for Xen"*)
        pass "auto with the dom0 build picks xl on Xen $XEN_RELEASE, saying why: $choice"
        refusal=$(timeout 60 "$LIBXL_BIN" advertise hypervisor --backend libxl --iface lo \
            --state-dir /tmp/refusal-state --http-port "$PROBE_PORT" 2>&1 >/dev/null)
        status=$?
        lines=$(printf '%s\n' "$refusal" | grep -c .)
        case $refusal in
        *"built for Xen "*"runs Xen $XEN_RELEASE"*"--backend xl"*)
            if [ "$status" = 1 ] && [ "$lines" = 1 ]; then
                pass "the dom0 build refuses --backend libxl on Xen $XEN_RELEASE: $refusal"
            else
                fail "the dom0 build's refusal: exit $status, $lines lines: $refusal"
            fi
            ;;
        *) fail "the dom0 build did not refuse --backend libxl on Xen $XEN_RELEASE: exit $status: $refusal" ;;
        esac
        ;;
    *) fail "auto with the dom0 build said: $choice" ;;
    esac
fi

# --- 2. the default build: xl on every release --------------------------------------------
choice=$(auto_choice "$DEFAULT_BIN" default)
case $choice in
*"--backend auto: xl"*) pass "auto with the default build picks xl on Xen $XEN_RELEASE: $choice" ;;
*) fail "auto with the default build said: $choice" ;;
esac
/checks.sh xl "$DEFAULT_BIN"
failures=$((failures + $?))
exit "$failures"
