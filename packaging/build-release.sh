#!/usr/bin/env bash
# Builds the default release artifact: a statically linked, size-optimized musl binary, and
# checks that it really is static. Prints the artifact's path. Needs no Xen package (the
# libxl backend is in the dom0 build: packaging/build-dom0.sh).
#
#   packaging/build-release.sh [TARGET]
#
# TARGET is x86_64-unknown-linux-musl (the default) or aarch64-unknown-linux-musl, which
# .cargo/config.toml links with rust-lld (no C cross toolchain needed).
set -euo pipefail
cd "$(dirname "$0")/.."
. packaging/lib.sh
target=${1:-x86_64-unknown-linux-musl}
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
cargo build --release --locked --target "$target" -p xenplug >&2
artifact="target/$target/release/xenplug"
require_static "$artifact" build-release
echo "$artifact"
