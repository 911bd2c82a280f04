#!/usr/bin/env bash
# Builds the dom0 artifact: xenplug with the libxl backend, for x86_64-unknown-linux-gnu with
# +crt-static, linking Debian's Xen 4.17 archives (libxen-dev) and libyajl_s, uuid, lzma, zstd
# and z statically (XEN_FFI_STATIC=1, see xen-ffi/build.rs). Checks that the result is static
# and prints its path. Needs: apt-get install libxen-dev libyajl-dev uuid-dev liblzma-dev
# libzstd-dev zlib1g-dev pkg-config.
#
# Built in target/dom0 so it does not rebuild the normal builds' artifacts. The linker may
# warn that getpwnam_r/getpwuid_r in a static glibc binary need the running system's glibc
# for NSS (libxl looks up a device-model user, which only `xl create` of an HVM guest does,
# in xl's own process). That is expected: those lines are filtered from the output (set
# XENPLUG_SHOW_LINKER_WARNINGS=1 to see them; rustc 1.95 shows no linker output anyway).
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh
target=x86_64-unknown-linux-gnu
target_dir=target/dom0
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
export XEN_FFI_STATIC=1
export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
build() {
    cargo build --release --locked --target "$target" --target-dir "$target_dir" \
        -p xenplug --features libxl
}
if [ "${XENPLUG_SHOW_LINKER_WARNINGS:-0}" = 1 ]; then
    build >&2
else
    # Keep every line but the expected NSS warnings (and cargo's "warning: linker stderr"
    # framing of them); the build's own status decides success.
    set +e
    build 2>&1 | grep -v -e 'getpwnam_r' -e 'getpwuid_r' -e 'statically linked applications requires at runtime' >&2
    status=${PIPESTATUS[0]}
    set -e
    [ "$status" = 0 ] || { echo "build-dom0: cargo build failed" >&2; exit "$status"; }
fi
artifact="$target_dir/$target/release/xenplug"
require_static "$artifact" build-dom0
echo "$artifact"
