#!/usr/bin/env bash
# Builds and runs every fuzz target for SECONDS_PER_TARGET seconds each (default 20), one
# after the other, and prints one summary line per target. Stops non-zero at the first crash,
# printing the crashing input and how to replay it.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET]
#
# Each target fuzzes a scratch corpus, tests/fuzz/target/corpus-<target>/, seeded from the
# committed tests/fuzz/corpus/<target>/ (which is never written to) and kept between runs so
# coverage accumulates; delete it to start again from the seeds. Needs the nightly toolchain;
# installs cargo-fuzz if it is missing.
set -euo pipefail

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi

fuzz_dir_abs="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$fuzz_dir_abs/../.." && pwd)"
fuzz_dir="tests/fuzz"
cd "$root"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: the nightly toolchain is needed: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

started=$SECONDS
cargo +nightly fuzz build --fuzz-dir "$fuzz_dir"
echo "fuzz: built in $((SECONDS - started)) s"

mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir "$fuzz_dir")
mkdir -p "$fuzz_dir/target"
# libFuzzer's own limits: total time, memory, input size, and 10 s for any one input (a hang
# is reported as a crash instead of eating the budget). `timeout` is the backstop.
libfuzzer_args=(
    "-max_total_time=$seconds"
    -rss_limit_mb=2048
    -max_len=8192
    -timeout=10
    -print_final_stats=1
)

for target in "${targets[@]}"; do
    corpus="$fuzz_dir_abs/target/corpus-$target"
    log="$fuzz_dir_abs/target/fuzz-$target.log"
    mkdir -p "$corpus"
    cp -- "$fuzz_dir_abs/corpus/$target"/* "$corpus/"
    status=0
    timeout --kill-after=10 "$((seconds + 120))" \
        cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" "$target" "$corpus" -- \
        "${libfuzzer_args[@]}" >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" >&2
        input="$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | sed 's/^Test unit written to //' || true)"
        echo "fuzz: $target FAILED (exit $status); full log: $log" >&2
        panic="$(grep -A1 'panicked at' "$log" | head -n 2 | tr '\n' ' ' || true)"
        if [ -n "$panic" ]; then
            echo "fuzz: panic: $panic" >&2
        fi
        if [ -n "$input" ]; then
            echo "fuzz: crashing input: $input" >&2
            echo "fuzz: replay: cargo +nightly fuzz run --fuzz-dir $fuzz_dir $target $input" >&2
        fi
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)"
    echo "fuzz: $target: ${runs:-?} executions in ${seconds} s, coverage ${cov:-?}, corpus $(find "$corpus" -type f | wc -l) inputs"
done
echo "fuzz: all ${#targets[@]} targets ran ${seconds} s each without a crash ($((SECONDS - started)) s in all)"
