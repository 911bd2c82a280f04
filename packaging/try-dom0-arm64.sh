#!/usr/bin/env bash
# An experiment, not run by CI: can the dom0 flavor (libxl backend, packaging/build-dom0.sh)
# be built for arm64 the way the x86-64 one is? It builds aarch64-unknown-linux-gnu with
# +crt-static and XEN_FFI_STATIC=1 against Debian 12's arm64 libxen-dev, then runs xen-ffi's
# tests under qemu-aarch64, the layout test included (every struct, field and constant of the
# raw declarations against the arm64 headers, with a C program compiled for arm64).
#
# Nothing is installed and dpkg's architectures are left alone: Debian's arm64 packages are
# fetched by apt-get download with an apt state of their own under target/arm64-sysroot and
# unpacked there as a sysroot. Needs gcc-aarch64-linux-gnu (the C driver, for glibc's start
# files), qemu-user and pkg-config.
#
# What happened (Debian 12, Xen 4.17.7, rustc 1.95): the link needs one archive the x86-64
# build does not, libfdt.a (libfdt-dev): Arm's libxl writes each guest's device tree. With it
# the program links, is static, runs under qemu-aarch64 (`--version`), and the xen-ffi tests
# pass, layout included. No Xen on Arm has run it, so the packages keep the dom0 flavor x86-64
# only.
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh
target=aarch64-unknown-linux-gnu
dir=$PWD/target/arm64-sysroot
sysroot=$dir/root
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

if [ ! -f "$sysroot/usr/lib/aarch64-linux-gnu/libxenlight.a" ]; then
    rm -rf "$dir"
    mkdir -p "$dir/state/lists/partial" "$dir/cache/archives/partial" "$dir/debs" "$sysroot"
    touch "$dir/status"
    apt=(apt-get -q -o "Dir::State=$dir/state" -o "Dir::State::status=$dir/status"
        -o "Dir::Cache=$dir/cache" -o APT::Architecture=arm64 -o APT::Architectures::=arm64
        -o APT::Sandbox::User=root)
    "${apt[@]}" update >/dev/null
    (cd "$dir/debs" && "${apt[@]}" download libxen-dev libxenmisc4.17 libxentoolcore1 \
        libxentoollog1 libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 \
        libxendevicemodel1 libxenstore4 libxenhypfs1 libyajl-dev libyajl2 uuid-dev libuuid1 \
        liblzma-dev liblzma5 libzstd-dev libzstd1 zlib1g-dev zlib1g libfdt-dev libfdt1 \
        libc6-dev libc6 linux-libc-dev libgcc-12-dev >/dev/null)
    for deb in "$dir"/debs/*.deb; do
        dpkg-deb -x "$deb" "$sysroot"
    done
fi

# The layout test compiles and runs a C program with `cc`: this one compiles it for arm64
# and leaves a script that runs it under qemu (every other `cc` call is the host's).
mkdir -p "$dir/bin"
cat >"$dir/bin/cc" <<EOF
#!/bin/sh
case "\$*" in *xen-ffi-layout/layout.c*) ;; *) exec /usr/bin/cc "\$@" ;; esac
out=
previous=
for argument; do [ "\$previous" = -o ] && out=\$argument; previous=\$argument; done
for argument; do
    shift
    if [ "\$argument" = "\$out" ]; then set -- "\$@" "\$out.arm64"; else set -- "\$@" "\$argument"; fi
done
aarch64-linux-gnu-gcc --sysroot="$sysroot" "\$@" -Wl,-rpath-link,"$sysroot/usr/lib/aarch64-linux-gnu"
printf '#!/bin/sh\nexec qemu-aarch64 -L %s %s.arm64\n' "$sysroot" "\$out" >"\$out"
chmod 0755 "\$out"
EOF
chmod 0755 "$dir/bin/cc"

export PATH="$dir/bin:$PATH"
export PKG_CONFIG_LIBDIR="$sysroot/usr/lib/aarch64-linux-gnu/pkgconfig:$sysroot/usr/share/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$sysroot"
export XEN_FFI_STATIC=1
export RUSTFLAGS="-C target-feature=+crt-static -C link-arg=--sysroot=$sysroot -C link-arg=-l:libfdt.a"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
cargo build --release --locked --target "$target" --target-dir target/dom0-arm64 \
    -p xenplug --features libxl >&2
artifact=target/dom0-arm64/$target/release/xenplug
require_static "$artifact" try-dom0-arm64
qemu-aarch64 "$artifact" --version
cargo test --target "$target" --target-dir target/dom0-arm64 -p xen-ffi --features libxl >&2
echo "$artifact"
