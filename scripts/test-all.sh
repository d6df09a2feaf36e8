#!/usr/bin/env bash
# Runs every check the project has: formatting, lints, a short run of each fuzz
# target (when cargo-fuzz and a nightly toolchain are present), then all tests.
# The test summary is the last thing printed.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

if [ -d bgp-core/fuzz ] && cargo fuzz --version >/dev/null 2>&1 \
    && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    secs="${FUZZ_SECONDS:-15}"
    for target in $(cd bgp-core && cargo +nightly fuzz list); do
        step "fuzz $target for ${secs}s"
        # New inputs go to the git-ignored working corpus; fuzz/seeds holds the
        # committed seeds and the regression inputs of fixed crashes.
        (cd bgp-core && mkdir -p "fuzz/corpus/$target" \
            && cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
            -max_total_time="$secs" -rss_limit_mb=2048 -timeout=5 2>&1 | tail -n 3)
    done
else
    step "fuzz smoke skipped (needs cargo-fuzz and a nightly toolchain)"
fi

step "cargo test --workspace"
cargo test --workspace --all-targets 2>&1 | tee target/test-output.log | grep -Ev '^test .* \.\.\. ok$'
cargo test --workspace --doc --quiet

# The lab, as the README runs it, with --check: the whole system or a failure.
# Needs root and FRR; without them it says why and the run counts it failed.
step "podpeer-lab --check"
lab_status=0
target/debug/podpeer-lab --check --bin-dir target/debug 2>&1 | tee target/lab-output.log || lab_status=$?

passed=$(grep -Eo '[0-9]+ passed' target/test-output.log | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.log | awk '{s+=$1} END {print s+0}')
echo
if [ "$lab_status" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
echo "summary: $passed passed, $failed failed"
[ "$failed" = 0 ]
