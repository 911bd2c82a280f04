#!/usr/bin/env bash
# Runs the installed package's init scripts against the installed program, one role at a
# time, each in a network namespace of its own (only its loopback interface: nothing reaches
# the machine's interfaces) and a mount namespace of its own (a private /run, and the test's
# configuration bound over the role's):
#   1. with the configuration as installed, `start` must refuse (exit 6 or 1, nothing runs):
#      no interface is guessed;
#   2. with a configuration on lo: start, status (running, and the role answers), reload
#      (the role logs its SIGHUP and keeps running), stop (the advertisers say byebye),
#      status (stopped).
#
#   packaging/test-init.sh sysvinit|openrc ROLE...     ROLE: xenplug-vm, xenplug-track, ...
#
# sysvinit: /etc/init.d/ROLE, configured by /etc/default/ROLE. openrc: Debian's openrc,
# librc1 and libeinfo1 are fetched with apt-get download into target/openrc (nothing is
# installed) and run in a chroot: the machine's /usr with them laid over it, an /etc holding
# the role's script from /usr/share/xenplug/openrc, its /etc/conf.d file and a stub service
# that provides `net`, a private /var and /run. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

VM_UUID=0b5e1c2a-1111-4a6b-8c9d-0000000000f1
HOST_UUID=0b5e1c2a-2222-4a6b-8c9d-0000000000f2

# The test's configuration of ROLE (the keys of /etc/default/ROLE), on lo.
config() {
    case $1 in
        xenplug-vm)
            echo 'XENPLUG_IFACE=lo'
            echo "XENPLUG_OPTIONS=\"--uuid $VM_UUID --name init-test\""
            ;;
        xenplug-hypervisor)
            echo 'XENPLUG_IFACE=lo'
            echo 'XENPLUG_BACKEND=sim'
            echo 'XENPLUG_OPTIONS="--sim-dir /var/lib/xenplug/init-test-sim"'
            ;;
        xenplug-track) echo 'XENPLUG_OPTIONS="--net mgmt=lo:provider --api 127.0.0.1:8700"' ;;
        xenplug-console)
            echo 'XENPLUG_OPTIONS="--listen 127.0.0.1:8780 --tracker http://127.0.0.1:8700"'
            ;;
        *) echo "test-init: unknown role $1" >&2; exit 2 ;;
    esac
}

# Whether ROLE, running, answers as it should (its log is LOG).
answers() {
    case $1 in
        xenplug-vm|xenplug-hypervisor) grep -q "advertising on lo" "$2" ;;
        xenplug-track) curl -sf -o /dev/null http://127.0.0.1:8700/api/tree ;;
        xenplug-console) curl -sf -o /dev/null http://127.0.0.1:8780/ ;;
    esac
}

# The pid of the program running in this network namespace, if one does.
role_pid() {
    local proc here
    here=$(readlink /proc/self/ns/net)
    for proc in /proc/[0-9]*; do
        [ "$(readlink "$proc/ns/net" 2>/dev/null)" = "$here" ] || continue
        case $(readlink "$proc/exe" 2>/dev/null) in
            */usr/bin/xenplug) echo "${proc#/proc/}"; return 0 ;;
        esac
    done
    return 1
}

# Polls COMMAND... for up to 10 s.
eventually() {
    local i
    for i in $(seq 50); do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}

fail() {
    echo "test-init: $*" >&2
    [ -n "${LOG:-}" ] && [ -f "$LOG" ] && { echo "--- $LOG" >&2; tail -n 20 "$LOG" >&2; }
    exit 1
}

# Runs ACTION of the role's script (via RUN), with its exit status in $status.
act() {
    set +e
    timeout 60 "${RUN[@]}" "$1"
    status=$?
    set -e
    echo "  $1: exit $status"
}

# Inside the namespaces: the two runs of one role. RUN is the script's command line, CONF the
# configuration file it reads, LOG its log file, ROOT the root it runs in.
exercise() {
    local role=$1 pid
    ip link set lo up
    act start
    case $status in
        1|6) ;;
        *) fail "$role started unconfigured (exit $status)" ;;
    esac
    ! role_pid >/dev/null || fail "$role runs unconfigured"
    config "$role" >"$CONF"
    if [ "$role" = xenplug-hypervisor ]; then
        mkdir -p "$ROOT/var/lib/xenplug/init-test-sim"
        printf 'uuid=%s\nname=init-test\n' "$HOST_UUID" >"$ROOT/var/lib/xenplug/init-test-sim/host"
    fi
    act start
    [ "$status" = 0 ] || fail "$role start: exit $status"
    act status
    [ "$status" = 0 ] || fail "$role status after start: exit $status"
    eventually answers "$role" "$LOG" || fail "$role does not answer"
    pid=$(role_pid) || fail "$role: no process"
    act reload
    [ "$status" = 0 ] || fail "$role reload: exit $status"
    eventually grep -q "SIGHUP" "$LOG" || fail "$role did not log its SIGHUP"
    kill -0 "$pid" || fail "$role stopped on SIGHUP"
    act status
    [ "$status" = 0 ] || fail "$role status after reload: exit $status"
    act stop
    [ "$status" = 0 ] || fail "$role stop: exit $status"
    # (A zombie waiting for the machine's init to reap it has no executable any more.)
    ! role_pid >/dev/null || fail "$role still runs after stop"
    case $role in
        xenplug-vm|xenplug-hypervisor) grep -q "ssdp:byebye" "$LOG" || fail "$role: no byebye" ;;
    esac
    act status
    [ "$status" = 3 ] || fail "$role status after stop: exit $status (3: not running)"
    rm -rf "$ROOT/var/lib/xenplug/init-test-sim"
}

# sysvinit, inside the namespaces: /etc/init.d/ROLE with the test's /etc/default/ROLE.
inner_sysvinit() {
    local role=$1
    mount -t tmpfs tmpfs /run
    CONF=$(mktemp)
    cp "/etc/default/$role" "$CONF"
    mount --bind "$CONF" "/etc/default/$role"
    ROOT=
    RUN=("/etc/init.d/$role")
    LOG=/var/log/xenplug/$role.log
    rm -f "$LOG"
    exercise "$role"
    umount "/etc/default/$role"
    rm -f "$CONF"
}

# openrc, inside the namespaces: a chroot as the header says.
inner_openrc() {
    local role=$1 openrc=$PWD/target/openrc/root
    ROOT=$PWD/target/openrc/chroot
    mount -t tmpfs tmpfs "$ROOT"
    mkdir -p "$ROOT"/{usr,etc,run,proc,dev,tmp,var}
    mount -t overlay overlay -o "lowerdir=$openrc/usr:/usr" "$ROOT/usr"
    local d
    for d in bin sbin lib lib64; do
        ln -s "usr/$d" "$ROOT/$d"
    done
    cp -a "$openrc/etc/." "$ROOT/etc/"
    # Users and PAM: supervise-daemon opens a PAM session to run a role as xenplug.
    cp -a /etc/passwd /etc/group /etc/shadow /etc/gshadow /etc/nsswitch.conf /etc/login.defs \
        /etc/pam.d /etc/security "$ROOT/etc/"
    mkdir -p "$ROOT/etc/init.d" "$ROOT/etc/conf.d" "$ROOT/etc/insserv.conf.d"
    touch "$ROOT/etc/insserv.conf"
    install -m 0755 "/usr/share/xenplug/openrc/$role" "$ROOT/etc/init.d/$role"
    cat >"$ROOT/etc/init.d/testnet" <<'EOF'
#!/sbin/openrc-run
description="the test namespace's network, up already"
depend() {
	provide net
}
start() {
	return 0
}
EOF
    chmod 0755 "$ROOT/etc/init.d/testnet"
    mount -t tmpfs tmpfs "$ROOT/run"
    mkdir -p "$ROOT/run/openrc"
    (cd "$ROOT/run/openrc" && mkdir -p started starting stopping inactive wasinactive failed \
        hotplugged daemons options exclusive scheduled tmp && touch softlevel)
    mount -t proc proc "$ROOT/proc"
    mount --rbind /dev "$ROOT/dev"
    mount -t tmpfs tmpfs "$ROOT/var"
    mkdir -p "$ROOT/var/lib" "$ROOT/var/log"
    ln -s /run "$ROOT/var/run"
    mount -t tmpfs tmpfs "$ROOT/tmp"
    CONF=$ROOT/etc/conf.d/$role
    : >"$CONF"
    RUN=(chroot "$ROOT" "/etc/init.d/$role")
    LOG=$ROOT/var/log/xenplug/$role.log
    exercise "$role"
}

if [ "${1:-}" = --inner ]; then
    "inner_$2" "$3"
    exit 0
fi

system=${1:?sysvinit or openrc}
shift
case $system in
    sysvinit) ;;
    openrc)
        if [ ! -x target/openrc/root/usr/sbin/openrc-run ]; then
            rm -rf target/openrc
            mkdir -p target/openrc/debs target/openrc/root
            (cd target/openrc/debs && apt-get download -q -o APT::Sandbox::User=root openrc librc1 libeinfo1 >/dev/null)
            for deb in target/openrc/debs/*.deb; do
                dpkg-deb -x "$deb" target/openrc/root
            done
            # Debian 12's packages still ship /lib, /bin and /sbin: lay them under /usr.
            for d in lib bin sbin; do
                mkdir -p "target/openrc/root/usr/$d"
                cp -a "target/openrc/root/$d/." "target/openrc/root/usr/$d/"
                rm -rf "target/openrc/root/$d"
            done
        fi
        # The chroot's mount point: its mounts exist only in each role's mount namespace.
        mkdir -p target/openrc/chroot
        ;;
    *) echo "test-init: sysvinit or openrc, not $system" >&2; exit 2 ;;
esac
for role in "$@"; do
    echo "$system $role:"
    ns=xp-init-$$-${role#xenplug-}
    ip netns add "$ns"
    set +e
    ip netns exec "$ns" unshare -m --propagation private "$0" --inner "$system" "$role"
    result=$?
    set -e
    ip netns pids "$ns" | xargs -r kill -KILL
    ip netns del "$ns"
    [ "$result" = 0 ] || exit "$result"
done
