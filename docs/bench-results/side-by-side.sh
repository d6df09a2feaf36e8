#!/bin/bash
# Side by side for issue [8/8]: podpeer's bench-dut against BIRD and FRR,
# interleaved per DUT, two repetitions: 1x1M, 10x100k, 1x100k with
# withdraw-all, and 1x1M with kernel FIB install (not FRR). Run as root after
# `cargo build --release -p podpeer-examples --bin bench-dut`.
# SHARED: the bench's checkout (default: ../shared beside this repository).
set -u
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
SHARED="${SHARED:-$REPO/../shared}"
OUT="${OUT:-$REPO/docs/bench-results/$(date +%F)-perf.jsonl}"
DUT="$REPO/target/release/bench-dut --config {config}"
cd "$SHARED" || exit 1
for rep in 1 2; do
  for dut in custom bird frr; do
    if [ "$dut" = custom ]; then D=(--dut custom --custom-cmd "$DUT"); else D=(--dut "$dut"); fi
    echo "repetition $rep, $dut" >&2
    bench/run.sh "${D[@]}" --prefixes 1000000 --timeout 120 --out "$OUT" 2>&1 | tail -1
    bench/run.sh "${D[@]}" --prefixes 100000 --injectors 10 --timeout 60 --out "$OUT" 2>&1 | tail -1
    bench/run.sh "${D[@]}" --prefixes 100000 --churn --out "$OUT" 2>&1 | tail -1
    if [ "$dut" != frr ]; then
      bench/run.sh "${D[@]}" --prefixes 1000000 --fib --timeout 120 --out "$OUT" 2>&1 | tail -1
    fi
  done
done
