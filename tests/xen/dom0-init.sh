#!/bin/sh
# /init of the test's dom0 (busybox sh): mounts, Xen kernel modules, xenstored, xen-init-dom0,
# xenconsoled (guest consoles logged to /var/log/xen/console), then /test.sh, then power off.
# Every line meant for the test starts with XENPLUG-; the serial console carries them out.
# The Xen release (4.17, 4.20) is in /etc/xen-release.
XEN_RELEASE=$(cat /etc/xen-release)
export XEN_RELEASE
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/xen-$XEN_RELEASE/bin:/usr/local/bin
export HOME=/root
up() { cut -d' ' -f1 /proc/uptime; }
fail_boot() {
    echo "XENPLUG-FAIL boot: $*"
    echo "XENPLUG-TEST-END status=1"
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname xenplug-dom0
echo "XENPLUG-DOM0 Xen $XEN_RELEASE, init at $(up) s"

for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do
    insmod "/lib/modules/xen/$m.ko" || fail_boot "insmod $m"
done
mount -t xenfs xenfs /proc/xen || fail_boot "mount xenfs"
mkdir -p /run/xen /run/xenstored /var/lib/xenstored /var/log/xen/console /var/lib/xen
xenstored --pid-file /run/xenstored.pid || fail_boot "xenstored did not start"
i=0
until xenstore-read -s / >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -le 100 ] || fail_boot "xenstored does not answer after 10 s"
    sleep 0.1
done
xen-init-dom0 >/tmp/xen-init-dom0.log 2>&1 || fail_boot "xen-init-dom0: $(cat /tmp/xen-init-dom0.log)"
xenconsoled --log=guest --log-dir=/var/log/xen/console || fail_boot "xenconsoled did not start"
ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo
echo "XENPLUG-DOM0 toolstack up at $(up) s"

/test.sh
status=$?
echo "XENPLUG-TEST-END status=$status at $(up) s"
sync
poweroff -f
