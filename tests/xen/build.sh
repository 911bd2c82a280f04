#!/usr/bin/env bash
# Builds what QEMU boots for the real-Xen test, from the packages fetch.sh unpacked:
#   WORK/xen             the hypervisor (Debian's xen-RELEASE-amd64.gz, gunzipped: multiboot ELF)
#   WORK/vmlinuz         the dom0 kernel (also the guest's)
#   WORK/dom0.cpio.gz    dom0's root (merged /usr): busybox, the Xen toolstack and its libraries,
#                        the xen kernel modules, XENPLUG_BIN as /usr/local/bin/xenplug, LIBXL_BIN
#                        (when given) as /opt/libxl/xenplug, the test scripts, the release in
#                        /etc/xen-release, and the guest's kernel and initramfs under /boot
#   WORK/qemu            a wrapper that runs the unpacked qemu-system-x86_64 with its own
#                        loader and libraries and the firmware search path
#
# usage: build.sh CACHE_DIR WORK_DIR XEN_RELEASE XENPLUG_BIN [LIBXL_BIN]
#   XEN_RELEASE: 4.17 or 4.20 (the set fetch.sh fetched: CACHE_DIR/dom0-XEN_RELEASE.manifest)
#   XENPLUG_BIN: the default (musl) xenplug, run in dom0 with --backend xl and in the guest
#   LIBXL_BIN:   the dom0 build with the libxl backend (optional)
set -euo pipefail

usage="usage: build.sh CACHE_DIR WORK_DIR XEN_RELEASE XENPLUG_BIN [LIBXL_BIN]"
cache=$(cd "${1:?$usage}" && pwd)
work=${2:?$usage}
release=${3:?$usage}
xenplug_bin=${4:?$usage}
libxl_bin=${5:-}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)
set_name=dom0-$release

say() { printf 'xen-build: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# The unpacked tree of the package named $2 in manifest $1.
tree() {
    local deb
    deb=$(grep -m1 "^$2_" "$cache/$1.manifest") || die "$2 is not in $cache/$1.manifest"
    echo "$cache/x/${deb%.deb}"
}

[ -s "$cache/$set_name.manifest" ] || die "no $cache/$set_name.manifest: run fetch.sh CACHE_DIR $release"
[ -x "$xenplug_bin" ] || die "no xenplug at $xenplug_bin"
[ -z "$libxl_bin" ] || [ -x "$libxl_bin" ] || die "no libxl xenplug at $libxl_bin"

hv=$(tree "$set_name" "xen-hypervisor-$release-amd64")
utils=$(tree "$set_name" "xen-utils-$release")
xs_utils=$(tree "$set_name" xenstore-utils)
busybox=$(tree "$set_name" busybox-static)/bin/busybox
[ -x "$busybox" ] || busybox=$(tree "$set_name" busybox-static)/usr/bin/busybox
kernel_deb=$(grep -m1 -E '^linux-image-[0-9]' "$cache/$set_name.manifest") || die "no kernel in $set_name"
kernel=$cache/x/${kernel_deb%.deb}
vmlinuz=$(ls "$kernel"/boot/vmlinuz-*)
# Debian 12 keeps modules in /lib/modules, Debian 13 in /usr/lib/modules (xz-compressed).
modules=
for dir in "$kernel"/lib/modules/*/kernel "$kernel"/usr/lib/modules/*/kernel; do
    [ -d "$dir" ] && modules=$dir && break
done
[ -n "$modules" ] || die "no kernel modules in $kernel"

gunzip -c "$hv/boot/xen-$release-amd64.gz" >"$work/xen"
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
cp "$xenplug_bin" "$guest/usr/local/bin/xenplug"
cp "$here/guest-rcS.sh" "$guest/etc/rcS"
chmod 755 "$guest/etc/rcS"
cat >"$guest/etc/inittab" <<'EOF'
::sysinit:/etc/rcS
::shutdown:/bin/echo XENPLUG-GUEST shutdown requested, powering off
EOF
ln -s bin/busybox "$guest/init"
pack "$guest" "$work/guest.cpio.gz"

# --- dom0 ---------------------------------------------------------------------------------
dom0=$work/dom0-root
base_root "$dom0"
# A merged /usr, as Debian 13 lays it out and Debian 12's loader finds it too.
mkdir -p "$dom0/usr/lib" "$dom0/usr/lib64"
ln -s usr/lib "$dom0/lib"
ln -s usr/lib64 "$dom0/lib64"
while read -r deb; do
    dir=$cache/x/${deb%.deb}
    case $deb in linux-image-*|xen-hypervisor-*|busybox-static_*) continue ;; esac
    for sub in lib lib64; do
        [ -d "$dir/$sub" ] && cp -a "$dir/$sub/." "$dom0/usr/$sub/"
        [ -d "$dir/usr/$sub" ] && cp -a "$dir/usr/$sub/." "$dom0/usr/$sub/"
    done
done <"$cache/$set_name.manifest"
rm -rf "$dom0/usr/lib/xen-$release/lib/python" "$dom0/usr/lib/xen-$release/boot" \
    "$dom0/usr/lib/x86_64-linux-gnu/gconv"
cp -a "$xs_utils/usr/bin/." "$dom0/bin/"
[ -x "$utils/usr/lib/xen-$release/bin/xl" ] || die "no xl in $utils"
mkdir -p "$dom0/lib/modules/xen"
for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs/xenfs; do
    if [ -f "$modules/drivers/xen/$m.ko" ]; then
        cp "$modules/drivers/xen/$m.ko" "$dom0/lib/modules/xen/"
    elif [ -f "$modules/drivers/xen/$m.ko.xz" ]; then
        xz -dc "$modules/drivers/xen/$m.ko.xz" >"$dom0/lib/modules/xen/${m##*/}.ko"
    else
        die "no module $m in $modules"
    fi
done
mkdir -p "$dom0/boot" "$dom0/etc/xen" "$dom0/var/lib/xen" "$dom0/var/log/xen" "$dom0/var/run/xen"
echo "$release" >"$dom0/etc/xen-release"
cp "$vmlinuz" "$dom0/boot/vmlinuz"
cp "$work/guest.cpio.gz" "$dom0/boot/guest.cpio.gz"
cp "$xenplug_bin" "$dom0/usr/local/bin/xenplug"
if [ -n "$libxl_bin" ]; then
    mkdir -p "$dom0/opt/libxl"
    cp "$libxl_bin" "$dom0/opt/libxl/xenplug"
fi
cp "$here/dom0-init.sh" "$dom0/init"
cp "$here/dom0-test.sh" "$dom0/test.sh"
cp "$here/dom0-checks.sh" "$dom0/checks.sh"
chmod 755 "$dom0/init" "$dom0/test.sh" "$dom0/checks.sh"
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
