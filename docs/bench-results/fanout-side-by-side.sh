#!/bin/bash
# Side by side for issue [8/8]'s fan-out rows: 500 peers x 2 /32s, static
# neighbors and a listen range (--dynamic), paced 8 at a time and all at
# once, for podpeer's bench-dut, GoBGP and BIRD, interleaved, two
# repetitions. Run as root after
# `cargo build --release -p podpeer-examples --bin bench-dut`.
set -u
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
SHARED="${SHARED:-$REPO/../shared}"
OUT="${OUT:-$REPO/docs/bench-results/$(date +%F)-fanout-side.jsonl}"
DUT="$REPO/target/release/bench-dut --config {config}"
cd "$SHARED" || exit 1
for rep in 1 2; do
  for dut in custom gobgp bird; do
    if [ "$dut" = custom ]; then D=(--dut custom --custom-cmd "$DUT"); else D=(--dut "$dut"); fi
    for dyn in "" --dynamic; do
      for pace in "--connect-concurrency 8" ""; do
        echo "repetition $rep, $dut $dyn $pace" >&2
        # shellcheck disable=SC2086
        bench/run.sh "${D[@]}" --scenario fanout-peers --peers 500 --per-peer 2 $dyn $pace \
          --timeout 60 --out "$OUT" 2>&1 | tail -1
      done
    done
  done
done
