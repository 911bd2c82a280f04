#!/bin/sh
# The checks of the real-Xen test for one backend, run by /test.sh once the toolstack is up
# (busybox sh, no python: xenplug itself, busybox wget and xl do the looking).
#
# usage: checks.sh BACKEND XENPLUG_BIN
#   BACKEND: libxl or xl, passed to `advertise hypervisor --backend`
#   XENPLUG_BIN: the xenplug that runs the hypervisor advertiser (the tracker and the console
#   are the default build, /usr/local/bin/xenplug)
#
# Each check prints one line on the serial console:
#   XENPLUG-PASS BACKEND: <check>: <details>   or   XENPLUG-FAIL BACKEND: <check>: <details>
# and the script exits with the number of failures. Every wait is bounded. It leaves no
# domain, no process and no file of its own behind, so the next backend starts clean.
#
# Everything talks over dom0's loopback: the hypervisor advertiser and the tracker on lo, the
# console through the tracker's API on 127.0.0.1:8700.

BACKEND=${1:?usage: checks.sh BACKEND XENPLUG_BIN}
HV_BIN=${2:?usage: checks.sh BACKEND XENPLUG_BIN}
HV_PORT=49152
API=http://127.0.0.1:8700
HV=http://127.0.0.1:$HV_PORT
REPO=/tmp/repo-$BACKEND
LOGS=/tmp/xenplug-$BACKEND
STATE=/var/lib/xenplug-$BACKEND
ETC=/tmp/etc-xenplug-$BACKEND
CONSOLE_LOGS=/var/log/xen/console
SAVE_DIR=/var/lib/xen/save
failures=0
pids=
mkdir -p "$LOGS" "$REPO" "$STATE"

up() { cut -d' ' -f1 /proc/uptime; }
pass() { echo "XENPLUG-PASS $BACKEND: $* (at $(up) s)"; }
fail() {
    echo "XENPLUG-FAIL $BACKEND: $* (at $(up) s)"
    failures=$((failures + 1))
}
# seconds_between T0 T1: T1 - T0, both from up().
seconds_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# at_most X LIMIT: X <= LIMIT (decimals).
at_most() { awk -v x="$1" -v l="$2" 'BEGIN { exit !(x <= l) }'; }
# Stops what this script started and removes its guests and files, however it ends.
clean_up() {
    for pid in $pids; do kill "$pid" 2>/dev/null; done
    for pid in $pids; do wait "$pid" 2>/dev/null; done
    for name in g1 g2; do xl destroy "$name" >/dev/null 2>&1; done
    rm -f /etc/xen/g1.cfg /etc/xen/g2.cfg
    rm -rf "$SAVE_DIR" "$CONSOLE_LOGS"/guest-*.log "$ETC"
}
trap clean_up EXIT
# wait_for SECONDS COMMAND...: run COMMAND every 0.25 s until it succeeds; false on timeout.
wait_for() {
    local n=$(($1 * 4))
    shift
    while [ "$n" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
        n=$((n - 1))
    done
    return 1
}

# --- xl: the truth about domains --------------------------------------------------------------
xl_has() { xl list "$1" >/dev/null 2>&1; }
xl_gone() { ! xl_has "$1"; }
xl_state() { xl list "$1" 2>/dev/null | awk 'NR == 2 { print $5 }'; }
xl_uuid() { xl list -v "$1" 2>/dev/null | awk 'NR == 2 { print $7 }'; }
xl_paused() { xl_state "$1" | grep -q p; }
xl_not_paused() { xl_has "$1" && ! xl_paused "$1"; }
# s: shut down (for a suspend, in place: the domain stays until resumed or destroyed).
xl_suspended() { xl_state "$1" | grep -q s; }
xl_not_suspended() { xl_has "$1" && ! xl_suspended "$1"; }

create_guest() {
    cat >"/etc/xen/$1.cfg" <<EOF
name = "$1"
type = "pv"
kernel = "/boot/vmlinuz"
ramdisk = "/boot/guest.cpio.gz"
extra = "console=hvc0 loglevel=3"
memory = 128
vcpus = 1
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
EOF
    [ -f /etc/xen/xl.conf ] || : >/etc/xen/xl.conf
    xl create "/etc/xen/$1.cfg" >"$LOGS/xl-create-$1.log" 2>&1
}

# --- xenplug's view ---------------------------------------------------------------------------
# busybox 1.35's `wget -T` crashes (SIGSEGV): bounds come from `timeout` instead.
description() { timeout 5 wget -q -O- "$HV/description.xml" 2>/dev/null | tr -d '\n'; }
has_description() { description | grep -q '<root'; }
config_id() { description | sed -n 's/.*<root[^>]* configId="\([0-9]*\)".*/\1/p'; }
# The UDN of the Domain device whose vmUuid is $1, from the description.
domain_udn() {
    description | sed 's/<device>/\n&/g' | grep "vmUuid>$1<" |
        sed -n 's/.*<UDN>uuid:\([^<]*\)<.*/\1/p'
}
# soap PATH SERVICE ACTION [BODY-ARGS]: the raw SOAP response body.
soap() {
    timeout 10 wget -q -O- \
        --header 'Content-Type: text/xml; charset="utf-8"' \
        --header "SOAPACTION: \"urn:xenplug-org:service:$2:1#$3\"" \
        --post-data "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:$3 xmlns:u=\"urn:xenplug-org:service:$2:1\">${4:-}</u:$3></s:Body></s:Envelope>" \
        "$HV$1" 2>&1
}
soap_state_is() { [ "$(soap_state "$1")" = "$2" ]; }
soap_state() { soap "/control/domain/$1" DomainControl GetState | sed -n 's/.*<State>\([^<]*\)<\/State>.*/\1/p'; }
tree_has() { xenplug console tree --json --tracker "$API" 2>/dev/null | grep -q "$1"; }
journal_has() { grep -q "$1" "$REPO/events.log" 2>/dev/null; }
journal_count() { grep -c "$1" "$REPO/events.log" 2>/dev/null || true; }
# journal_more PATTERN N: more than N journal lines match PATTERN.
journal_more() { [ "$(journal_count "$1")" -gt "$2" ]; }
journal_line() { grep "$1" "$REPO/events.log" 2>/dev/null | tail -n 1; }
config_id_above() { [ "$(config_id)" -gt "$1" ] 2>/dev/null; }
g2_state_matches() { state_matches "$(xl_state g2)" "$(soap_state "$uuid2")"; }
g2_renamed_to_g2() { grep "kind=vm-renamed subject=$uuid2" "$REPO/events.log" 2>/dev/null | grep -q " to=g2\( \|$\)"; }
tracker_saw_byebye() { grep -q "uuid:$1 gone (ByeBye)" "$LOGS/track.log" 2>/dev/null; }
# call TARGET ACTION [NAME=VALUE...]: through the console and the tracker's relay (SOAP to the
# Domain or Hypervisor device). Targets are UUIDs.
call() {
    local target=$1 action=$2
    shift 2
    xenplug console call "$target" "$action" "$@" --yes --tracker "$API" >"$LOGS/call-$action.out" 2>&1
    local status=$?
    echo "XENPLUG-INFO console call $target $action $*: exit $status: $(tr '\n' ' ' <"$LOGS/call-$action.out")"
    return $status
}
host_uuid() { soap /control/hypervisor Hypervisor GetHostInfo | sed -n 's/.*<HostUuid>\([^<]*\)<\/HostUuid>.*/\1/p'; }

# state_matches XL_STATE XENPLUG_STATE: whether xenplug's state word agrees with xl's letters.
state_matches() {
    case "$1/$2" in
    /*) return 1 ;;
    *p*/paused) return 0 ;;
    *p*/*) return 1 ;;
    # Shut down, crashed or dying: not a live guest's state.
    *[scd]*/*) return 1 ;;
    # r (on a CPU), b (blocked) or no flag at all (runnable, waiting for a CPU: what a busy
    # host shows): xenplug says running or blocked, and the guest may move between them at any
    # instant, so either answer matches.
    */running | */blocked) return 0 ;;
    esac
    return 1
}

# The guest's heartbeat (guest-rcS.sh): beats seen on g1's console so far.
alive_count() { tr -d '\r' <"$CONSOLE_LOGS/guest-g1.log" 2>/dev/null | grep -c "XENPLUG-GUEST alive" || true; }
# alive_since N: more than N beats.
alive_since() { [ "$(alive_count)" -gt "$1" ]; }

# gone_checks NAME UUID UDN CONFIGID_BEFORE HOW: once a guest left, the network heard it: the
# tracker saw its Domain device's byebye, CONFIGID moved, the journal has its vm-removed.
gone_checks() {
    if wait_for 15 tracker_saw_byebye "$3"; then
        pass "ssdp:byebye for $1's Domain device uuid:$3 reached the tracker"
    else
        fail "the tracker saw no byebye for uuid:$3"
    fi
    local after
    after=$(config_id)
    [ -n "$after" ] && [ -n "$4" ] && [ "$after" -gt "$4" ] &&
        pass "CONFIGID moved when $1 $5: $4 -> $after" ||
        fail "CONFIGID did not move when $1 $5: $4 -> $after"
    if wait_for 15 journal_has "kind=vm-removed subject=$2"; then
        pass "journal: $(journal_line "kind=vm-removed subject=$2")"
    else
        fail "no vm-removed for $2 in the journal"
    fi
}

dump_logs() {
    for f in "$LOGS"/hypervisor.log "$LOGS"/track.log "$LOGS"/watch.log "$REPO"/events.log \
        "$CONSOLE_LOGS"/guest-*.log; do
        [ -f "$f" ] || continue
        echo "XENPLUG-LOG ==== $f (last 40 lines)"
        tail -n 40 "$f" | sed 's/^/XENPLUG-LOG /'
    done
}

# --- 1. a guest, then xenplug ------------------------------------------------------------------
t0=$(up)
xl list -v >/dev/null 2>&1
echo "XENPLUG-INFO $BACKEND: one xl list -v takes $(seconds_between "$t0" "$(up)") s here, dom0 idle"
echo "XENPLUG-STEP create guest g1 at $(up) s"
if create_guest g1 && xl_has g1; then
    uuid1=$(xl_uuid g1)
    pass "xl create g1: uuid $uuid1, state $(xl_state g1)"
else
    fail "xl create g1: $(tail -n 5 "$LOGS/xl-create-g1.log" | tr '\n' ' ')"
    echo "XENPLUG-INFO xl list: $(xl list 2>&1 | tr '\n' '|')"
    dump_logs
    exit "$failures"
fi

# Access control as a provider sets it up: an access file with an admin whose token the
# console uses, and a control key the tracker signs relayed calls with and the hypervisor checks.
mkdir -p "$ETC"
xenplug access new-key "$ETC/control.key" 2>/dev/null
XENPLUG_TOKEN=$(xenplug access new root admin --file "$ETC/access" 2>/dev/null)
export XENPLUG_TOKEN
[ -n "$XENPLUG_TOKEN" ] || fail "xenplug access new gave no token: the console's calls will be refused"
XENPLUG_LOG=debug "$HV_BIN" advertise hypervisor --backend "$BACKEND" --iface lo \
    --state-dir "$STATE" --http-port "$HV_PORT" \
    --control-key "$ETC/control.key" 2>"$LOGS/hypervisor.log" &
hv_pid=$!
pids="$pids $hv_pid"
# When the advertiser started, in /proc/uptime's seconds: its process's start time (field 22
# of /proc/PID/stat, in 1/100 s). Its log's times count from a moment a few milliseconds later
# (exec, then main), so announcement times computed from them are, if anything, that much early.
hv_started=$(sed 's/.*) //' "/proc/$hv_pid/stat" | awk '{ printf "%.2f", $20 / 100 }')
XENPLUG_LOG=debug xenplug track --net mgmt=lo:provider --repo "$REPO" --api 127.0.0.1:8700 \
    --access "$ETC/access" --control-key "$ETC/control.key" 2>"$LOGS/track.log" &
pids="$pids $!"
if wait_for 30 has_description; then
    pass "hypervisor advertiser serves $HV/description.xml (configId $(config_id))"
else
    fail "hypervisor advertiser ($BACKEND backend): no description; its log: $(tail -n 5 "$LOGS/hypervisor.log" | tr '\n' ' ')"
    echo "XENPLUG-FAIL $BACKEND: the checks through xenplug were not run: the hypervisor advertiser is not up"
    failures=$((failures + 1))
    dump_logs
    exit "$failures"
fi
if wait_for 20 timeout 2 wget -q -O /dev/null --header "Authorization: Bearer $XENPLUG_TOKEN" \
    "$API/api/tree"; then
    xenplug console watch --since 0 --tracker "$API" >"$LOGS/watch.log" 2>&1 &
    pids="$pids $!"
fi
if grep -q "following domains through xenstore watches" "$LOGS/hypervisor.log"; then
    pass "changes followed through xenstore watches: $(grep -m1 "following domains through xenstore watches" "$LOGS/hypervisor.log")"
else
    fail "the $BACKEND backend set no xenstore watch: $(grep -m1 "xenstore" "$LOGS/hypervisor.log")"
fi

# --- 2. the Hypervisor device lists the guest with its real UUID and state ---------------------
echo "XENPLUG-STEP listing at $(up) s"
ids=$(soap /control/hypervisor Hypervisor GetVirtualMachineIds)
case $ids in
*"$uuid1"*) pass "SOAP GetVirtualMachineIds lists g1's real UUID $uuid1" ;;
*) fail "SOAP GetVirtualMachineIds does not list $uuid1: $ids" ;;
esac
case $(description) in
*"<xenplug:vmUuid>$uuid1</xenplug:vmUuid>"*) pass "description has a Domain device with vmUuid $uuid1 (UDN $(domain_udn "$uuid1"))" ;;
*) fail "description has no Domain device with vmUuid $uuid1" ;;
esac
state1=$(soap_state "$uuid1")
xl1=$(xl_state g1)
if state_matches "$xl1" "$state1"; then
    pass "SOAP GetState of g1: $state1, xl says $xl1"
else
    fail "SOAP GetState of g1: '$state1', xl says '$xl1'"
fi
if wait_for 30 tree_has "$uuid1"; then
    pass "tracker found g1 over SSDP: console tree lists $uuid1; repository: $(grep -E '^(hypervisor|run_state)=' "$REPO/virtual/$uuid1" 2>/dev/null | tr '\n' ' ')"
else
    fail "console tree does not list $uuid1 after 30 s"
fi

# --- 3. the guest's own view: xenplug advertise vm inside it -----------------------------------
echo "XENPLUG-STEP guest identity at $(up) s"
guest_log=$CONSOLE_LOGS/guest-g1.log
if wait_for 90 grep -q "XENPLUG-GUEST ready" "$guest_log"; then
    grep "XENPLUG-GUEST" "$guest_log" | tr -d '\r' | sed 's/^/XENPLUG-INFO g1 console: /'
    sysfs=$(tr -d '\r' <"$guest_log" | sed -n 's/.*XENPLUG-GUEST sysfs-uuid=\([^ ]*\).*/\1/p' | tail -n 1)
    udn=$(tr -d '\r' <"$guest_log" | sed -n 's/.*XENPLUG-GUEST xenplug-udn=\([^ ]*\).*/\1/p' | tail -n 1)
    vm=$(tr -d '\r' <"$guest_log" | sed -n 's/.*xenplug-vmuuid=\([^ ]*\).*/\1/p' | tail -n 1)
    if [ "$sysfs" = "$uuid1" ] && [ "$udn" = "$uuid1" ] && [ "$vm" = "$uuid1" ]; then
        pass "inside g1: /sys/hypervisor/uuid, xenplug advertise vm's UDN and vmUuid all $uuid1"
    else
        fail "inside g1: sysfs '$sysfs', UDN '$udn', vmUuid '$vm'; xl says $uuid1"
    fi
else
    fail "g1 printed no identity on its console within 90 s: $(tail -n 5 "$guest_log" 2>/dev/null | tr '\r\n' '  ')"
fi

# --- 4. Pause and Resume: the real domain changes, a GENA event tells the tracker ---------------
echo "XENPLUG-STEP pause at $(up) s"
before=$(config_id)
if call "$uuid1" Pause && wait_for 10 xl_paused g1; then
    pass "Pause through SOAP: xl says $(xl_state g1)"
else
    fail "Pause through SOAP: xl says $(xl_state g1)"
fi
# The tracker signed it on behalf of the console's identity; the hypervisor checked the key.
if grep -q "(root): Pause on domain/$uuid1: done" "$LOGS/hypervisor.log"; then
    pass "the Pause was signed for identity root and checked by the hypervisor"
else
    fail "the hypervisor did not log a signed Pause from root: $(grep Pause "$LOGS/hypervisor.log" | tail -n 2 | tr '\n' ' ')"
fi
if journal_has "kind=action subject=$uuid1 identity=root role=admin .*action=Pause .*outcome=ok"; then
    pass "the Pause is journaled with its identity: $(journal_line "kind=action subject=$uuid1 .*action=Pause")"
else
    fail "no action line for the Pause in the journal"
fi
if wait_for 15 journal_has "kind=vm-state-changed subject=$uuid1 .*to=paused"; then
    pass "GENA State event for Pause: journal: $(journal_line "subject=$uuid1 .*to=paused")"
else
    fail "no vm-state-changed to=paused for $uuid1 in the journal"
fi
state=$(soap_state "$uuid1")
[ "$state" = paused ] && pass "SOAP GetState after Pause: paused" || fail "SOAP GetState after Pause: '$state'"
after=$(config_id)
[ -n "$before" ] && [ "$before" = "$after" ] &&
    pass "a state change leaves CONFIGID alone ($after)" ||
    fail "CONFIGID moved on a state change: $before -> $after"

echo "XENPLUG-STEP resume at $(up) s"
if call "$uuid1" Resume && wait_for 10 xl_not_paused g1; then
    pass "Resume through SOAP: xl says $(xl_state g1)"
else
    fail "Resume through SOAP: xl says $(xl_state g1)"
fi
if wait_for 15 journal_has "kind=vm-state-changed subject=$uuid1 .*from=paused"; then
    pass "GENA State event for Resume: journal: $(journal_line "subject=$uuid1 .*from=paused")"
else
    fail "no vm-state-changed from=paused for $uuid1 in the journal"
fi

# --- 5. Suspend: in place (the guest suspends itself, the domain stays), then to disk --------
# Only libxl can resume a domain suspended in place; the xl backend's refusal is checked on g2.
echo "XENPLUG-STEP in-place suspend at $(up) s"
domid1=$(xl domid g1 2>/dev/null)
alive=$(alive_count)
if [ "$BACKEND" != libxl ]; then
    :
elif [ -n "$domid1" ] && xenstore-write "/local/domain/$domid1/control/shutdown" suspend &&
    wait_for 30 xl_suspended g1; then
    pass "g1 suspended in place (control/shutdown=suspend): xl says $(xl_state g1)"
    if wait_for 10 soap_state_is "$uuid1" suspended; then
        pass "SOAP GetState of g1 suspended in place: suspended"
    else
        fail "SOAP GetState of g1 suspended in place: '$(soap_state "$uuid1")'"
    fi
    if call "$uuid1" Resume && wait_for 20 xl_not_suspended g1; then
        pass "Resume of a domain suspended in place: xl says $(xl_state g1)"
    else
        fail "Resume of a domain suspended in place: xl says $(xl_state g1)"
    fi
    if wait_for 20 alive_since "$alive"; then
        pass "g1's console is alive after the in-place resume ($(alive_count) beats)"
    else
        fail "g1's console shows no heartbeat after the in-place resume ($(alive_count) beats)"
    fi
else
    fail "g1 did not suspend in place: xl says $(xl_state g1)"
fi

echo "XENPLUG-STEP suspend at $(up) s"
suspended=$(journal_count "kind=vm-state-changed subject=$uuid1 .*to=suspended")
resumed=$(journal_count "kind=vm-state-changed subject=$uuid1 .*from=suspended")
call "$uuid1" Suspend
if wait_for 90 xl_gone g1; then
    pass "Suspend through SOAP: g1 is gone from xl list; $SAVE_DIR holds $(ls "$SAVE_DIR" 2>/dev/null | tr '\n' ' ')"
else
    fail "Suspend through SOAP: xl still lists g1 ($(xl_state g1))"
fi
if wait_for 10 soap_state_is "$uuid1" suspended; then
    pass "SOAP GetState of the saved g1: suspended"
else
    fail "SOAP GetState of the saved g1: '$(soap_state "$uuid1")'"
fi
if wait_for 15 journal_more "kind=vm-state-changed subject=$uuid1 .*to=suspended" "$suspended"; then
    pass "GENA State event for Suspend: journal: $(journal_line "subject=$uuid1 .*to=suspended")"
else
    fail "no new vm-state-changed to=suspended for $uuid1 in the journal"
fi
if ! call "$(host_uuid)" StartVirtualMachine "VirtualMachineId=$uuid1" && grep -q "701" "$LOGS/call-StartVirtualMachine.out" &&
    grep -q "Resume" "$LOGS/call-StartVirtualMachine.out"; then
    pass "Start of the saved g1 is refused: $(tr '\n' ' ' <"$LOGS/call-StartVirtualMachine.out")"
else
    fail "Start of the saved g1 was not refused with 701 and a word about Resume"
fi

echo "XENPLUG-STEP resume from disk at $(up) s"
alive=$(alive_count)
call "$uuid1" Resume
if wait_for 90 xl_not_suspended g1 && [ "$(xl_uuid g1)" = "$uuid1" ]; then
    pass "Resume through SOAP: g1 restored with its UUID $uuid1, xl says $(xl_state g1)"
else
    fail "Resume through SOAP: xl says '$(xl_state g1)', uuid '$(xl_uuid g1)'"
fi
if wait_for 15 journal_more "kind=vm-state-changed subject=$uuid1 .*from=suspended" "$resumed"; then
    pass "GENA State event for the restore: journal: $(journal_line "subject=$uuid1 .*from=suspended")"
else
    fail "no new vm-state-changed from=suspended for $uuid1 in the journal"
fi
if wait_for 30 alive_since "$alive"; then
    pass "g1's console is alive after the restore ($(alive_count) beats)"
else
    fail "g1's console shows no heartbeat after the restore ($(alive_count) beats)"
fi
if [ -z "$(ls -A "$SAVE_DIR" 2>/dev/null)" ]; then
    pass "the restore removed the image and its record from $SAVE_DIR"
else
    fail "$SAVE_DIR still holds $(ls -A "$SAVE_DIR" | tr '\n' ' ')"
fi

# --- 6. Shutdown: the guest powers off, its Domain device says byebye, CONFIGID moves -----------
echo "XENPLUG-STEP shutdown at $(up) s"
udn1=$(domain_udn "$uuid1")
before=$(config_id)
if call "$uuid1" Shutdown && wait_for 40 xl_gone g1; then
    pass "Shutdown through SOAP: g1 powered off and is gone from xl list"
else
    fail "Shutdown through SOAP: xl still lists g1 ($(xl_state g1))"
fi
g1_gone=$(up)
grep -q "shutdown requested" "$guest_log" 2>/dev/null &&
    pass "g1's init saw the shutdown request on its console" ||
    echo "XENPLUG-INFO g1's console shows no shutdown line"
gone_checks g1 "$uuid1" "$udn1" "$before" "left"

# --- 7. A second guest appears (ssdp:alive, CONFIGID), then Destroy ------------------------------
echo "XENPLUG-STEP second guest at $(up) s"
# After a domain event the backends read the host again 0.5 to 15.5 s later (pause and unpause
# fire no watch): wait until those reads are over, so that only the watch can announce g2.
quiet=$(awk -v g="$g1_gone" -v n="$(up)" 'BEGIN { s = g + 17 - n; print (s > 0 ? s : 0) }')
sleep "$quiet"
before=$(config_id)
# When xenstored introduces g2: xenstore-watch prints the watch's up-front event, then one line
# per introduction; it stops after the second.
(timeout 300 xenstore-watch -n 2 @introduceDomain 2>/dev/null |
    while read -r path; do
        # Builtins only: a fork here, under emulation and beside a busy xl create, delays the
        # time read by up to a second.
        read -r now _ </proc/uptime
        echo "$now $path"
    done >"$LOGS/introduce.log") &
pids="$pids $!"
wait_for 10 test -s "$LOGS/introduce.log" ||
    echo "XENPLUG-INFO $BACKEND: xenstore-watch printed nothing; the announcement is timed from xl create"
create_from=$(up)
if create_guest g2; then
    created=$(up)
    # How soon the hypervisor device announced g2 (its CONFIGID moved, ssdp:alive went out)
    # once xenstored introduced it, from the time in the device's own log line (its times
    # count from the advertiser's start). xl create returns some time later: it unpauses the
    # domain last.
    introduced=$(sed -n '2s/ .*//p' "$LOGS/introduce.log")
    # The watcher above is woken by the same event as the advertiser and may run after it:
    # then the difference is negative (measured -0.2 to 0 s under QEMU). The advertiser's own
    # log also says when the event reached it; from there to the announcement is on one clock.
    latency=
    inside=
    if wait_for 15 config_id_above "$before"; then
        now_id=$(config_id)
        logged=$(grep -m1 "description changed: CONFIGID $now_id\$" "$LOGS/hypervisor.log" | awk '{ print $1 }')
        [ -n "$logged" ] && latency=$(awk -v s="$hv_started" -v l="$logged" -v i="${introduced:-$created}" 'BEGIN { printf "%.2f", s + l - i }')
        heard=$(awk -v id="$now_id" '
            /xenstore watch fired: @introduceDomain/ { t = $1 }
            $0 ~ ("description changed: CONFIGID " id "$") { print t; exit }' "$LOGS/hypervisor.log")
        [ -n "$heard" ] && [ -n "$logged" ] && inside=$(awk -v h="$heard" -v l="$logged" 'BEGIN { printf "%.3f", l - h }')
    fi
    echo "XENPLUG-INFO $BACKEND: g2 announced ${latency:-never} s after a xenstore-watch in dom0 saw it introduced at ${introduced:-?} s, ${inside:-?} s after the advertiser heard @introduceDomain; xl create ran from $create_from s to $created s"
    echo "XENPLUG-INFO $BACKEND: the advertiser's log before the announcement (started at $hv_started s): $(grep -B 4 -m1 "description changed: CONFIGID ${now_id:-none}\$" "$LOGS/hypervisor.log" | tr '\n' '|')"
    if [ -n "$latency" ] && [ -n "$introduced" ] && at_most "$latency" 1.0 &&
        [ -n "$inside" ] && at_most "$inside" 1.0; then
        pass "g2 announced within 1 s of its introduction: $latency s after xenstore-watch saw it, $inside s after the advertiser heard it (CONFIGID $before -> $now_id)"
    else
        fail "g2 not announced within 1 s of its introduction (at ${introduced:-?} s): ${latency:-no CONFIGID change logged within 15} s after xenstore-watch, ${inside:-?} s after the advertiser heard it"
    fi
fi
if xl_has g2; then
    uuid2=$(xl_uuid g2)
    pass "xl create g2: uuid $uuid2"
else
    fail "xl create g2: $(tail -n 5 "$LOGS/xl-create-g2.log" | tr '\n' ' ')"
fi
if [ -n "${uuid2:-}" ]; then
    if wait_for 20 g2_state_matches; then
        pass "SOAP GetState of the new g2 matches xl: $(soap_state "$uuid2"), xl says $(xl_state g2)"
    else
        fail "SOAP GetState of the new g2: '$(soap_state "$uuid2")', xl says '$(xl_state g2)'"
    fi
    if wait_for 15 journal_has "kind=vm-added subject=$uuid2"; then
        pass "g2 announced: journal: $(journal_line "kind=vm-added subject=$uuid2")"
    else
        fail "no vm-added for $uuid2 in the journal"
    fi
    after=$(config_id)
    [ -n "$after" ] && [ -n "$before" ] && [ "$after" -gt "$before" ] &&
        pass "CONFIGID moved when g2 came: $before -> $after" ||
        fail "CONFIGID did not move when g2 came: $before -> $after"
    # xenplug lists a domain only once its name can be read, but the tracker may hear of g2
    # first from a VirtualMachineIds event (UUID only): then its vm-added has no name and the
    # description that follows brings a vm-renamed to=g2. Either way the real name reaches the
    # journal, and no placeholder name ever does.
    if journal_line "kind=vm-added subject=$uuid2" | grep -q " name=g2\( \|$\)"; then
        pass "g2's real name reaches the journal: $(journal_line "kind=vm-added subject=$uuid2")"
    elif wait_for 5 g2_renamed_to_g2; then
        pass "g2's real name reaches the journal: $(journal_line "kind=vm-added subject=$uuid2") then $(journal_line "kind=vm-renamed subject=$uuid2")"
    else
        fail "g2's real name never reached the journal: $(journal_line "kind=vm-added subject=$uuid2") / $(journal_line "kind=vm-renamed subject=$uuid2")"
    fi
    placeholders=$(grep "subject=$uuid2" "$REPO/events.log" 2>/dev/null | grep "=domain-" || true)
    if [ -n "$placeholders" ]; then
        fail "a journal line for g2 carries a placeholder name (domain-...): $(echo "$placeholders" | tr '\n' '|')"
    fi
    echo "XENPLUG-INFO polls that met a domain without a name yet: $(grep -c "has no name yet" "$LOGS/hypervisor.log")"

    if [ "$BACKEND" = xl ]; then
        # xl has no command that resumes a domain suspended in place: the Resume is refused
        # with 701 and a word on what to do, and the Destroy below ends the domain.
        echo "XENPLUG-STEP in-place suspend of g2 at $(up) s"
        domid2=$(xl domid g2 2>/dev/null)
        if ! wait_for 120 grep -q "XENPLUG-GUEST ready" "$CONSOLE_LOGS/guest-g2.log"; then
            fail "g2 printed nothing on its console within 120 s: $(tail -n 3 "$CONSOLE_LOGS/guest-g2.log" 2>/dev/null | tr '\r\n' '  ')"
        elif [ -n "$domid2" ] && xenstore-write "/local/domain/$domid2/control/shutdown" suspend &&
            wait_for 30 xl_suspended g2; then
            pass "g2 suspended in place (control/shutdown=suspend): xl says $(xl_state g2)"
            if wait_for 10 soap_state_is "$uuid2" suspended; then
                pass "SOAP GetState of g2 suspended in place: suspended"
            else
                fail "SOAP GetState of g2 suspended in place: '$(soap_state "$uuid2")'"
            fi
            if ! call "$uuid2" Resume && grep -q "701" "$LOGS/call-Resume.out" &&
                grep -q "xl has no command" "$LOGS/call-Resume.out"; then
                pass "Resume of g2 suspended in place is refused: $(tr '\n' ' ' <"$LOGS/call-Resume.out")"
            else
                fail "Resume of g2 suspended in place was not refused with 701 and a word on xl: $(tr '\n' ' ' <"$LOGS/call-Resume.out")"
            fi
        else
            fail "g2 did not suspend in place: xl says $(xl_state g2)"
        fi
    fi

    echo "XENPLUG-STEP destroy at $(up) s"
    udn2=$(domain_udn "$uuid2")
    before=$(config_id)
    if call "$uuid2" Destroy && wait_for 20 xl_gone g2; then
        pass "Destroy through SOAP: g2 is gone from xl list"
    else
        fail "Destroy through SOAP: xl still lists g2 ($(xl_state g2))"
    fi
    gone_checks g2 "$uuid2" "$udn2" "$before" "was destroyed"
fi

# --- 8. the console's live feed saw it all --------------------------------------------------------
if grep -q "$uuid1" "$LOGS/watch.log" 2>/dev/null; then
    pass "console watch printed $(grep -c . "$LOGS/watch.log") events"
else
    fail "console watch printed nothing about $uuid1"
fi
echo "XENPLUG-INFO xl list at the end: $(xl list 2>&1 | tr '\n' '|')"
[ "$failures" -eq 0 ] || dump_logs
exit "$failures"
