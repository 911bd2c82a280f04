#!/bin/sh
# sysinit of the test's PV guest (busybox init): prints, on its console (hvc0, which dom0's
# xenconsoled logs), the UUID the guest sees in /sys/hypervisor/uuid and the one
# `xenplug advertise vm` publishes, then idles under busybox init so that dom0 can pause,
# resume, suspend, shut down and destroy it. A heartbeat line every 2 s shows the guest still
# runs (after a save and restore, for instance). The guest has no network device: xenplug runs on lo.
export PATH=/bin:/sbin:/usr/local/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
say() { echo "XENPLUG-GUEST $*"; }
say "sysfs-uuid=$(cat /sys/hypervisor/uuid 2>/dev/null)"

ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo
mkdir -p /tmp/services /tmp/state
port=49200
xenplug advertise vm --iface lo --services /tmp/services --state-dir /tmp/state \
    --http-port "$port" --name guest 2>/tmp/vm.log &
pid=$!
i=0
until timeout 2 wget -q -O /tmp/desc.xml "http://127.0.0.1:$port/description.xml" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 60 ] || ! kill -0 "$pid" 2>/dev/null; then
        say "no description from xenplug advertise vm"
        break
    fi
    sleep 0.5
done
udn=$(tr -d '\n' </tmp/desc.xml 2>/dev/null | sed -n 's/.*<UDN>uuid:\([^<]*\)<\/UDN>.*/\1/p')
vm_uuid=$(tr -d '\n' </tmp/desc.xml 2>/dev/null | sed -n 's/.*<xenplug:vmUuid>\([^<]*\)<\/xenplug:vmUuid>.*/\1/p')
say "xenplug-udn=$udn xenplug-vmuuid=$vm_uuid"
kill -TERM "$pid" 2>/dev/null
sleep 1
head -n 5 /tmp/vm.log | sed 's/^/XENPLUG-GUEST log: /'
say "ready"
# Bounded: 1000 beats, about 33 minutes.
(
    beat=0
    while [ "$beat" -lt 1000 ]; do
        sleep 2
        beat=$((beat + 1))
        say "alive $beat"
    done
) &
