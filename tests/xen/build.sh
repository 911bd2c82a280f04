#!/usr/bin/env bash
# Builds what QEMU boots for the real-Xen test, from the packages fetch.sh unpacked:
#   WORK/xen             the hypervisor (Debian's xen-4.17-amd64.gz, gunzipped: multiboot ELF)
#   WORK/vmlinuz         the dom0 kernel (also the guest's)
#   WORK/dom0.cpio.gz    dom0's root: busybox, the Xen toolstack and its libraries, the xen
#                        kernel modules, DOM0_BIN as /usr/local/bin/xenplug, the test script,
#                        and the guest's kernel and initramfs under /boot
#   WORK/qemu            a wrapper that runs the unpacked qemu-system-x86_64 with its own
#                        loader and libraries and the firmware search path
#
# usage: build.sh CACHE_DIR WORK_DIR DOM0_BIN [GUEST_BIN]
#   GUEST_BIN (default DOM0_BIN) is the xenplug the guest runs.
set -euo pipefail

cache=$(cd "${1:?usage: build.sh CACHE_DIR WORK_DIR DOM0_BIN [GUEST_BIN]}" && pwd)
work=${2:?work dir}
dom0_bin=${3:?dom0 xenplug binary}
guest_bin=${4:-$dom0_bin}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)

say() { printf 'xen-build: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# The unpacked tree of the package named $2 in manifest $1.
tree() {
    local deb
    deb=$(grep -m1 "^$2_" "$cache/$1.manifest") || die "$2 is not in $cache/$1.manifest"
    echo "$cache/x/${deb%.deb}"
}

[ -x "$dom0_bin" ] || die "no dom0 xenplug at $dom0_bin"
[ -x "$guest_bin" ] || die "no guest xenplug at $guest_bin"

hv=$(tree dom0 xen-hypervisor-4.17-amd64)
utils=$(tree dom0 xen-utils-4.17)
xs_utils=$(tree dom0 xenstore-utils)
busybox=$(tree dom0 busybox-static)/bin/busybox
kernel_deb=$(grep -m1 -E '^linux-image-[0-9]' "$cache/dom0.manifest") || die "no kernel in the dom0 set"
kernel=$cache/x/${kernel_deb%.deb}
vmlinuz=$(ls "$kernel"/boot/vmlinuz-*)
modules=$(ls -d "$kernel"/lib/modules/*/kernel)

gunzip -c "$hv/boot/xen-4.17-amd64.gz" >"$work/xen"
cp "$vmlinuz" "$work/vmlinuz"

# newc cpio of directory $1, gzipped into $2 (owner root).
pack() {
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | "$busybox" cpio -o -H newc -R 0:0 2>/dev/null) |
        gzip -1 >"$2"
}

# A root with busybox applets as links in /bin and the base directories.
base_root() {
    local root=$1
    rm -rf "$root"
    mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run,etc,root,var/log,usr/local/bin}
    cp "$busybox" "$root/bin/busybox"
    local applet
    for applet in $("$busybox" --list); do
        [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
    done
    # init, and what the kernel runs on a shutdown or reboot request (orderly_poweroff runs
    # /sbin/poweroff; busybox's signals busybox init, which runs the inittab shutdown line).
    for applet in init poweroff reboot halt; do
        ln -sf ../bin/busybox "$root/sbin/$applet"
    done
}

# --- guest ---------------------------------------------------------------------------------
guest=$work/guest-root
base_root "$guest"
cp "$guest_bin" "$guest/usr/local/bin/xenplug"
cp "$here/guest-rcS.sh" "$guest/etc/rcS"
chmod 755 "$guest/etc/rcS"
cat >"$guest/etc/inittab" <<'EOF'
::sysinit:/etc/rcS
::shutdown:/bin/echo XENPLUG-GUEST shutdown requested, powering off
EOF
ln -s bin/busybox "$guest/init"
pack "$guest" "$work/guest.cpio.gz"

# --- dom0 ----------------------------------------------------------------------------------
dom0=$work/dom0-root
base_root "$dom0"
# Libraries of the dom0 set, as Debian lays them out (the default search path of its loader).
while read -r deb; do
    dir=$cache/x/${deb%.deb}
    case $deb in linux-image-*|xen-hypervisor-*|busybox-static_*) continue ;; esac
    for sub in lib lib64 usr/lib; do
        [ -d "$dir/$sub" ] || continue
        mkdir -p "$dom0/$sub"
        cp -a "$dir/$sub/." "$dom0/$sub/"
    done
done <"$cache/dom0.manifest"
rm -rf "$dom0/usr/lib/xen-4.17/lib/python" "$dom0/usr/lib/xen-4.17/boot" "$dom0/lib/x86_64-linux-gnu/gconv"
cp -a "$xs_utils/usr/bin/." "$dom0/bin/"
[ -x "$utils/usr/lib/xen-4.17/bin/xl" ] || die "no xl in $utils"
mkdir -p "$dom0/lib/modules/xen"
for m in xen/xen-evtchn xen/xen-gntdev xen/xen-gntalloc xen/xen-privcmd xen/xenfs/xenfs; do
    cp "$modules/drivers/$m.ko" "$dom0/lib/modules/xen/"
done
mkdir -p "$dom0/boot" "$dom0/etc/xen" "$dom0/var/lib/xen" "$dom0/var/log/xen" "$dom0/var/run/xen"
cp "$vmlinuz" "$dom0/boot/vmlinuz"
cp "$work/guest.cpio.gz" "$dom0/boot/guest.cpio.gz"
cp "$dom0_bin" "$dom0/usr/local/bin/xenplug"
cp "$here/dom0-init.sh" "$dom0/init"
cp "$here/dom0-test.sh" "$dom0/test.sh"
chmod 755 "$dom0/init" "$dom0/test.sh"
pack "$dom0" "$work/dom0.cpio.gz"
rm -rf "$guest" "$dom0"

# --- qemu ----------------------------------------------------------------------------------
qemu=$(tree qemu qemu-system-x86)/usr/bin/qemu-system-x86_64
loader=$(tree qemu libc6)/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
libpath=
while read -r deb; do
    for sub in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
        [ -d "$cache/x/${deb%.deb}/$sub" ] && libpath=$libpath${libpath:+:}$cache/x/${deb%.deb}/$sub
    done
done <"$cache/qemu.manifest"
cat >"$work/qemu" <<EOF
#!/bin/sh
# qemu-system-x86_64 unpacked from Debian's packages, run with their own loader and libraries.
export QEMU_MODULE_DIR='$(tree qemu qemu-system-common)/usr/lib/x86_64-linux-gnu/qemu'
exec '$loader' --library-path '$libpath' '$qemu' \\
    -L '$(tree qemu qemu-system-data)/usr/share/qemu' -L '$(tree qemu seabios)/usr/share/seabios' "\$@"
EOF
chmod 755 "$work/qemu"
"$work/qemu" --version | head -1 >&2
say "dom0.cpio.gz $(stat -c %s "$work/dom0.cpio.gz") bytes, guest.cpio.gz $(stat -c %s "$work/guest.cpio.gz") bytes"
