#!/usr/bin/env bash
# Builds podpeer and runs the lab (as root): pods announcing a VIP, a node
# guarding and installing it, a fabric and a client, in network namespaces.
# Arguments go to podpeer-lab (--check, --pods N, --help).
# PODPEER_PROFILE=release builds optimised binaries (slower to build).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${PODPEER_PROFILE:-dev}"
dir=debug
[ "$profile" = release ] && dir=release
if [ "$(id -u)" != 0 ]; then
    echo "the lab makes network namespaces: run it as root (sudo $0 $*)" >&2
    exit 1
fi
if ! command -v /usr/lib/frr/bgpd >/dev/null; then
    echo "the lab's fabric router is FRR: apt-get install -y frr" >&2
    exit 1
fi
echo "building podpeer ($profile profile)..." >&2
cargo build --profile "$profile" --bins -p podpeer-node -p podpeer-sidecar -p podpeer-interop-tests
exec "target/$dir/podpeer-lab" --bin-dir "target/$dir" "$@"
