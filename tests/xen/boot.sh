#!/bin/sh
# Boots what build.sh made: Xen under QEMU (TCG, no KVM needed), dom0 with its initramfs.
# The serial console (Xen, then dom0's hvc0) is this process's stdout. QEMU has no network
# device (-nic none) and exits when Xen powers the machine off (-no-reboot for a reset).
# usage: boot.sh WORK_DIR
set -eu
work=${1:?usage: boot.sh WORK_DIR}
exec "$work/qemu" \
    -machine q35,accel=tcg -cpu qemu64 -smp 2 -m 2048 \
    -nographic -monitor none -serial stdio -vga none \
    -nic none -no-reboot \
    -kernel "$work/xen" \
    -append "console=com1 com1=115200,8n1 dom0_mem=768M,max:768M dom0_max_vcpus=1 noreboot" \
    -initrd "$work/vmlinuz console=hvc0 earlyprintk=xen loglevel=4,$work/dom0.cpio.gz"
