#!/usr/bin/env bash
# Builds the default release artifact: a statically linked, size-optimized x86_64 musl binary,
# and checks that it really is static. Prints the artifact's path.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
cargo build --release --locked --target "$target" -p xenplug >&2
artifact="target/$target/release/xenplug"
description=$(file -b "$artifact")
case "$description" in
  *"statically linked"*|*"static-pie linked"*) ;;
  *) echo "build-release: $artifact is not statically linked: $description" >&2; exit 1 ;;
esac
echo "build-release: $(stat -c %s "$artifact") bytes, $description" >&2
echo "$artifact"
