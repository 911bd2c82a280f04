#!/usr/bin/env bash
# Benchmark (not a test, not run by CI's test step): one tracker in front of a fleet of
# simulated hypervisors, 100 x 100 and 1 x 1,000 VMs by default. Prints one table row per
# scenario: convergence, receive-buffer drops, the tracker's memory per VM and peak / steady,
# /api/tree and /api/vms times, new-domain-to-journal latency, a hypervisor's idle CPU. What
# each column means, and how the fleet is laid out: tests/benches/fleet.py.
#
# Usage (as root): tests/benches/fleet.sh [PATH-TO-XENPLUG] [fleet.py options...]
#   default binary: the release artifact (static musl), built by packaging/build-release.sh;
#   e.g. tests/benches/fleet.sh "" --scenario 10x100 --trials 10
# Bounded: each scenario stops after --budget seconds (240 by default); everything it made
# (namespaces xpf-*, processes, files) is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "fleet.sh: run as root (network namespaces)" >&2; exit 1; }
BIN=${1:-}
shift || true
if [ -z "$BIN" ]; then
    BIN=$(packaging/build-release.sh)
fi
exec /usr/bin/python3 tests/benches/fleet.py --bin "$BIN" "$@"
