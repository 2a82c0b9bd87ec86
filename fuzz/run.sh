#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 120), one after another,
# in one process at the lowest CPU priority, and prints per target the run
# time, executions, coverage and features, and any crash/timeout/OOM file.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (installed if missing) and nightly compiler features:
# the nightly toolchain when rustup has one, else stable with
# RUSTC_BOOTSTRAP=1. CI does not run this; `cargo test` replays the
# committed corpora (tests/fuzz_corpus.rs in both crates) on stable.
#
# New inputs go to fuzz/target/corpus/<target>/ (not committed); findings to
# fuzz/artifacts/<target>/. A finding, once fixed, is added to
# fuzz/corpus/<target>/ so the stable replay keeps it fixed.
set -euo pipefail

secs=${1:-120}
shift || true
cd "$(dirname "$0")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi

nice -n 19 cargo "${toolchain[@]}" fuzz build

status=0
summary=()
for t in "${targets[@]}"; do
    work=fuzz/target/corpus/$t
    log=fuzz/target/logs/$t.log
    mkdir -p "$work" "$(dirname "$log")" "fuzz/artifacts/$t"
    start=$(date +%s)
    # The first directory receives new inputs; the committed corpus is read.
    if nice -n 19 cargo "${toolchain[@]}" fuzz run "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        result=ok
    else
        result="FOUND: $(ls -1 "fuzz/artifacts/$t" | tr '\n' ' ')"
        status=1
    fi
    took=$(($(date +%s) - start))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
    summary+=("$(printf '%-13s %5ss  execs %-10s cov %-6s ft %-6s %s' "$t" "$took" "$execs" "$cov" "$ft" "$result")")
done
printf '%s\n' "${summary[@]}"
exit $status
