#!/usr/bin/env bash
# Checks the Debian packages packaging/build-deb.sh made in target/deb, on this machine:
#  - lintian on each (every tag is shown; an error fails), and the arm64 program's --version
#    under qemu-aarch64;
#  - xenplug (amd64) installed with dpkg -i: nothing runs; every file the man pages' FILES
#    sections name is where they say (but what the administrator or a running role makes, and
#    the hypervisor's files, which only xenplug-dom0 has); /usr/bin/xenplug --version and each
#    role link; systemd-analyze verify of each unit and security's exposure of each
#    (xenplug-track and xenplug-console at most 2.0); the system calls of those two against
#    their units' filter (packaging/test-syscalls.sh); the sysvinit and OpenRC scripts of its
#    roles against the installed program, in namespaces (packaging/test-init.sh);
#  - xenplug installed again (an upgrade): still nothing runs;
#  - xenplug-dom0 installed over it (it replaces xenplug): the same with the hypervisor's files;
#  - dpkg --purge of both: no file of theirs is left (compared with a list made before the
#    install), only the xenplug user and group, which Debian policy keeps.
#
#   packaging/test-deb.sh        (root; lintian, systemd, curl, qemu-user, iproute2, strace)
#
# Installing starts nothing: the roles need an interface the defaults files do not name.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
deb=target/deb
musl_deb=$deb/xenplug_${version}_amd64.deb
arm_deb=$deb/xenplug_${version}_arm64.deb
dom0_deb=$deb/xenplug-dom0_${version}_amd64.deb
work=$deb/test
rm -rf "$work"
mkdir -p "$work"

fail() {
    echo "test-deb: $*" >&2
    exit 1
}

step() {
    printf '\n-- %s\n' "$*"
}

# Paths the man pages name that no package installs: the administrator makes them, or Xen.
not_installed='^(/etc/xenplug/(access|control\.key|track\.key)|/etc/xen|/var/lib/xen/save|/sys/.*)$'
# Paths only xenplug-dom0 installs.
dom0_only='^(/etc/default/xenplug-hypervisor|/etc/init\.d/xenplug-hypervisor|/lib/systemd/system/xenplug-hypervisor\.service|/usr/share/xenplug/openrc/xenplug-hypervisor)$'

# Every file xenplug's packages could leave, as a list to compare before and after.
traces() {
    find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
        -o -path /work -o -path /root -o -path /home -o -path /var/cache -o -path /var/tmp \) \
        -prune -o -name '*xenplug*' -print | sort
}

# Whether a process runs the installed program.
installed_program_runs() {
    local proc
    for proc in /proc/[0-9]*; do
        [ "$(readlink "$proc/exe" 2>/dev/null)" = /usr/bin/xenplug ] && return 0
    done
    return 1
}

# check_installed PACKAGE: what both packages are checked for once installed.
check_installed() {
    local package=$1 path missing=0 unit score
    ! installed_program_runs || fail "$package: installing started the program"
    step "$package: the FILES of the man pages"
    for path in $(for page in /usr/share/man/man1/xenplug*.gz /usr/share/man/man8/xenplug*.gz; do
        # The .I line right after .TP or .TQ: the heading of an entry.
        zcat "$page" | awk '/^\.SH / { files = ($2 == "FILES") }
            files && /^\.I / && (last == ".TP" || last == ".TQ") { print $2 }
            { last = $1 }'
    done | sed 's/\\-/-/g' | sort -u); do
        if [[ $path =~ $not_installed ]]; then
            echo "  $path (made by the administrator or Xen)"
            continue
        fi
        if [ "$package" = xenplug-dom0 ]; then
            path=${path/\/usr\/share\/doc\/xenplug\//\/usr\/share\/doc\/xenplug-dom0\/}
        elif [[ $path =~ $dom0_only ]]; then
            [ ! -e "$path" ] || { echo "  $path: present, but only xenplug-dom0 has it"; missing=1; }
            continue
        fi
        if [ -e "$path" ]; then
            echo "  $path"
        else
            echo "  $path: MISSING"
            missing=1
        fi
    done
    [ "$missing" = 0 ] || fail "$package: the man pages name files it does not have"
    step "$package: the man pages render without a warning (man -l, groff -ww)"
    for path in /usr/share/man/man1/xenplug*.gz /usr/share/man/man8/xenplug*.gz; do
        out=$( { MANWIDTH=80 man --warnings=w -E UTF-8 -l -Tutf8 "$path" >/dev/null; } 2>&1)
        out+=$(zcat "$path" | groff -ww -z -man 2>&1)
        [ -z "$out" ] || fail "$path: $out"
        echo "  $path"
    done
    step "$package: the program and its links"
    /usr/bin/xenplug --version
    for path in /usr/sbin/xenplug-hypervisor /usr/sbin/xenplug-vm /usr/sbin/xenplug-track \
        /usr/bin/xenplug-console; do
        "$path" --help | head -n 1 | grep -q "^Usage: xenplug " || fail "$path --help"
        echo "  $path: $("$path" --help | head -n 1 | cut -c1-60)..."
    done
    step "$package: systemd units"
    for unit in /lib/systemd/system/xenplug-*.service; do
        out=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "verify $unit: $out"
        [ -z "$out" ] || fail "verify $unit: $out"
        score=$(systemd-analyze security --offline=true "$unit" | tail -n 1)
        echo "  $(basename "$unit"): verified; ${score#*: }"
    done
    for unit in xenplug-track xenplug-console; do
        systemd-analyze security --offline=true --threshold=20 \
            "/lib/systemd/system/$unit.service" >/dev/null ||
            fail "$unit.service is exposed more than 2.0"
    done
}

step "lintian"
for package in "$musl_deb" "$arm_deb" "$dom0_deb"; do
    [ -f "$package" ] || fail "$package was not built (packaging/build-deb.sh)"
    echo "$(basename "$package"):"
    lintian --fail-on error --display-info --tag-display-limit 0 "$package" | sed 's/^/  /' ||
        fail "lintian found errors in $package"
done
dpkg-deb --fsys-tarfile "$arm_deb" | tar -xO ./usr/bin/xenplug >"$work/xenplug-arm64"
chmod 0755 "$work/xenplug-arm64"
echo "arm64 program: $(qemu-aarch64 "$work/xenplug-arm64" --version)"

# Whether PACKAGE is installed (dpkg's status "ii" or any other installed state).
installed() {
    dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^.i'
}

! installed xenplug && ! installed xenplug-dom0 ||
    fail "xenplug is installed already: this test installs and purges it"
traces >"$work/before"
# Whatever happens below, the machine is left without the packages.
trap 'dpkg --purge xenplug-dom0 xenplug >/dev/null 2>&1 || true' EXIT

step "dpkg -i xenplug"
dpkg -i "$musl_deb"
check_installed xenplug
step "xenplug: the system calls of the tracker and the console, against their units' filter"
packaging/test-syscalls.sh /usr/bin/xenplug
step "xenplug: sysvinit scripts"
packaging/test-init.sh sysvinit xenplug-vm xenplug-track xenplug-console
step "xenplug: OpenRC scripts"
packaging/test-init.sh openrc xenplug-vm xenplug-track xenplug-console

step "dpkg -i xenplug again (postinst's upgrade path: only running roles restart)"
dpkg -i "$musl_deb"
! installed_program_runs || fail "the upgrade started the program"

step "dpkg -i xenplug-dom0 (replaces xenplug)"
dpkg -i "$dom0_deb"
! installed xenplug || fail "xenplug is still installed"
/usr/bin/xenplug --version | grep -q 'linux-gnu' || fail "not the dom0 program"
check_installed xenplug-dom0
step "xenplug-dom0: the hypervisor's sysvinit and OpenRC scripts"
packaging/test-init.sh sysvinit xenplug-hypervisor
packaging/test-init.sh openrc xenplug-hypervisor

step "dpkg --purge"
dpkg --purge xenplug-dom0 xenplug
traces >"$work/after"
if ! diff -u "$work/before" "$work/after"; then
    fail "the purge left the files above"
fi
echo "nothing of xenplug is left but its system user and group (Debian policy keeps them):"
getent passwd xenplug
getent group xenplug
