#!/usr/bin/env bash
# Capture real BGP messages from FRR, BIRD 2 and GoBGP as golden test fixtures.
#
#   sudo interop-tests/scripts/capture-golden.sh [CASE...]
#
# CASE is any of: frr bird gobgp bird-as2 (default: all four).
#
# For each case two network namespaces (pgcap-<pid>-<case>-a / -b) are joined by a
# veth pair (10.99.0.1/30 + fd99::1/64 <-> 10.99.0.2/30 + fd99::2/64, fixed MAC
# addresses so the link-local addresses are fe80::ff:fe99:1 and fe80::ff:fe99:2).
# The daemon under test ("X", AS 65001, router-id 10.99.0.1) runs passively in ns A;
# a BIRD 2 instance (AS 65002, router-id 10.99.0.2) runs in ns B and connects to it
# (eBGP, one IPv4 TCP session, IPv4 unicast + IPv6 unicast via MP-BGP).
# tcpdump in ns A records port 179. The scenario:
#
#   1. session comes up; X announces
#        192.0.2.0/24, 198.51.100.0/25   MED 50, communities 65001:100 65001:200,
#                                        large communities 65001:1:2 65001:3:4
#        2001:db8:1::/48 (MP_REACH_NLRI) community 65001:300
#   2. X withdraws 198.51.100.0/25 and 2001:db8:1::/48
#   3. X shuts the session down administratively with the shutdown
#      communication "golden" (Cease / Administrative Shutdown, RFC 8203)
#
# Case bird-as2: X is BIRD with "enable as4 off" (a 2-octet-only speaker, no
# 4-octet AS capability, IPv4 unicast only); the peer is BIRD AS 65002 (4-octet
# capable), so the session uses 2-octet AS_PATHs. Routes pass through 4-octet
# ASes: X announces 192.0.2.0/24 with 4200000001 prepended (X sends AS_PATH
# 65001 23456 plus AS4_PATH 65001 4200000001) and 198.51.100.0/25 without; the
# peer announces 203.0.113.0/24 with 4200000003 prepended. Then X withdraws
# 198.51.100.0/25 and shuts the session down.
# (A peer with a 4-octet local AS does not work here: BIRD 2.0.12 takes the peer
# AS from the AS4 capability even with "enable as4 off", and refuses a 4-octet
# "neighbor ... as" in that mode.)
#
# GoBGP runs with graceful restart enabled: without it GoBGP sends no End-of-RIB.
#
# Output, per case, under bgp-core/tests/fixtures/<case>/ (or $OUT_ROOT/<case>/):
#   capture.pcap           the whole capture
#   NN-<kind>.hex          each BGP message sent by X, in order
#   peer/NN-<kind>.hex     each BGP message sent by the peer, in order
# (split by split-bgp-stream.py next to this script).
#
# Needs root, iproute2, tcpdump, python3, and the Debian packages frr, bird2,
# gobgpd. Everything it creates (namespaces, processes, temp dir) is removed on
# exit, also on errors and Ctrl-C. KEEP_WORK=1 keeps the temp dir (configs, logs).

set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
OUT_ROOT=${OUT_ROOT:-$REPO_ROOT/bgp-core/tests/fixtures}
KEEP_WORK=${KEEP_WORK:-0}
SPLIT="$SCRIPT_DIR/split-bgp-stream.py"

X_AS=65001
PEER_AS=65002
X_IP4=10.99.0.1
PEER_IP4=10.99.0.2
X_IP6=fd99::1
PEER_IP6=fd99::2
X_MAC=02:00:00:99:00:01
PEER_MAC=02:00:00:99:00:02
SHUTDOWN_MSG=golden
GOBGP_API=127.0.0.1:50051

TAG="pgcap-$$"
WORK=""
NAMESPACES=()
PIDS=()
TCPDUMP_PID=""

log() { printf '[capture %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- cleanup ------------------------------------------------------------------

# alive and not a zombie
pid_alive() {
    local st
    [[ -n $1 ]] && st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [[ -n $st && $st != Z ]]
}

stop_pids() {
    # stop_pids PID... : SIGTERM, wait up to 5 s, then SIGKILL.
    local p left i
    for p in "$@"; do
        if pid_alive "$p"; then kill -TERM "$p" 2>/dev/null || true; fi
    done
    for ((i = 0; i < 50; i++)); do
        left=0
        for p in "$@"; do pid_alive "$p" && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for p in "$@"; do
        if pid_alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
    done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

teardown_case() {
    local ns pids
    if ((${#PIDS[@]})); then stop_pids "${PIDS[@]}"; fi
    PIDS=()
    for ns in "${NAMESPACES[@]}"; do
        # anything still running in a namespace we created was started by us
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        if [[ -n $pids ]]; then
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null || true
            sleep 1
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            # shellcheck disable=SC2086
            [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
        fi
        ip netns del "$ns" 2>/dev/null || true
    done
    NAMESPACES=()
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM HUP
    teardown_case
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ $KEEP_WORK == 1 || $rc != 0 ]]; then
            log "work dir kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- helpers ------------------------------------------------------------------

[[ $(id -u) == 0 ]] || die "must run as root (network namespaces)"
for c in ip tcpdump python3 unshare bird birdc gobgpd gobgp /usr/lib/frr/zebra /usr/lib/frr/bgpd vtysh ss; do
    command -v "$c" >/dev/null || die "missing $c"
done

WORK=$(mktemp -d "/tmp/${TAG}.XXXXXX")
chmod 755 "$WORK"

# bg NAME NS CMD... : run CMD in namespace NS in the background, output to $WD/NAME.out
bg() {
    local name=$1 ns=$2
    shift 2
    ip netns exec "$ns" "$@" </dev/null >"$WD/$name.out" 2>&1 &
    PIDS+=("$!")
    log "started $name (pid $!): $*"
}

check_alive() {
    local p
    for p in "${PIDS[@]}"; do
        if ! pid_alive "$p"; then
            tail -n 30 "$WD"/*.out "$WD"/*.log 2>/dev/null >&2 || true
            die "process $p exited early"
        fi
    done
}

# wait_until SECONDS DESCRIPTION CMD... : poll CMD until it succeeds
wait_until() {
    local limit=$1 desc=$2 end
    shift 2
    end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || die "timed out after ${limit}s waiting for: $desc"
        check_alive
        sleep 0.2
    done
}

# try_until: like wait_until but only warns on timeout
try_until() {
    local limit=$1 desc=$2 end
    shift 2
    end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= end)); then log "WARNING: timed out after ${limit}s waiting for: $desc"; return 0; fi
        check_alive
        sleep 0.2
    done
}

# (command output is captured first: with pipefail, "cmd | grep -q" can fail on SIGPIPE)
listening() { local o; o=$(ip netns exec "$1" ss -Hltn 'sport = :179') && [[ -n $o ]]; }

setup_link() {
    local ns
    NS_A="$TAG-$CASE-a"
    NS_B="$TAG-$CASE-b"
    for ns in "$NS_A" "$NS_B"; do
        ip netns add "$ns"
        NAMESPACES+=("$ns")
        ip -n "$ns" link set lo up
        # no duplicate address detection: addresses are usable at once
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
    done
    ip link add veth-a netns "$NS_A" address "$X_MAC" type veth \
        peer name veth-b netns "$NS_B" address "$PEER_MAC"
    ip -n "$NS_A" addr add "$X_IP4/30" dev veth-a
    ip -n "$NS_A" addr add "$X_IP6/64" dev veth-a nodad
    ip -n "$NS_B" addr add "$PEER_IP4/30" dev veth-b
    ip -n "$NS_B" addr add "$PEER_IP6/64" dev veth-b nodad
    ip -n "$NS_A" link set veth-a up
    ip -n "$NS_B" link set veth-b up
    wait_until 10 "link-local address on veth-a" \
        sh -c "ip -n '$NS_A' -6 addr show dev veth-a scope link | grep -v tentative | grep -q fe80"
    wait_until 10 "link-local address on veth-b" \
        sh -c "ip -n '$NS_B' -6 addr show dev veth-b scope link | grep -v tentative | grep -q fe80"
    wait_until 10 "IPv4 reachability" ip netns exec "$NS_A" ping -c1 -W1 "$PEER_IP4"
}

start_tcpdump() {
    bg tcpdump "$NS_A" tcpdump -i veth-a -U -s 0 -n -w "$WD/capture.pcap" 'tcp port 179'
    TCPDUMP_PID=${PIDS[-1]}
    wait_until 10 "tcpdump to start" grep -q "listening on" "$WD/tcpdump.out"
}

# --- peer: BIRD in ns B ---------------------------------------------------------

peer_birdc() { birdc -s "$WD/peer.ctl" "$@"; }

start_peer() {
    local chans
    if [[ $CASE == bird-as2 ]]; then
        chans="ipv4 { import all; export where proto = \"p4\"; };"
    else
        chans="ipv4 { import all; export none; }; ipv6 { import all; export none; };"
    fi
    cat >"$WD/peer.conf" <<EOF
log "$WD/peer.log" all;
router id $PEER_IP4;
protocol device { scan time 10; }
protocol static p4 {
  ipv4;
  route 203.0.113.0/24 blackhole {
    bgp_path.prepend(4200000003);
    bgp_community.add((65002, 1));
    bgp_large_community.add((4200000003, 7, 8));
  };
}
protocol bgp x {
  local $PEER_IP4 as $PEER_AS;
  neighbor $X_IP4 as $X_AS;
  # first connect 5 s after start; also delays the reconnect after X's shutdown,
  # which then happens after the capture has been stopped
  connect delay time 5;
  $chans
}
EOF
    bg peer "$NS_B" bird -f -c "$WD/peer.conf" -s "$WD/peer.ctl" -P "$WD/peer.pid"
}

peer_established() { local o; o=$(peer_birdc show protocols x) && [[ $o == *Established* ]]; }
peer_not_established() { local o; o=$(peer_birdc show protocols x) && [[ $o != *Established* ]]; }
# peer_has TABLE PREFIX / peer_lacks TABLE PREFIX: routes the peer learned from X
peer_has() { local o; o=$(peer_birdc show route table "$1" protocol x) && [[ $o == *"$2"* ]]; }
peer_lacks() { local o; o=$(peer_birdc show route table "$1" protocol x) && [[ $o == *BIRD* && $o != *"$2"* ]]; }
x_has() { local o; o=$(birdc -s "$WD/bird.ctl" show route protocol peer) && [[ $o == *"$1"* ]]; }

# --- daemon under test in ns A ---------------------------------------------------

start_frr() {
    cat >"$WD/zebra.conf" <<EOF
hostname pgcap-x
log file $WD/zebra.log informational
EOF
    cat >"$WD/bgpd.conf" <<EOF
hostname pgcap-x
log file $WD/bgpd.log informational
!
route-map GOLDEN4 permit 10
 set metric 50
 set community 65001:100 65001:200
 set large-community 65001:1:2 65001:3:4
exit
!
route-map GOLDEN6 permit 10
 set community 65001:300
exit
!
router bgp $X_AS
 bgp router-id $X_IP4
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor $PEER_IP4 remote-as $PEER_AS
 neighbor $PEER_IP4 passive
 !
 address-family ipv4 unicast
  network 192.0.2.0/24 route-map GOLDEN4
  network 198.51.100.0/25 route-map GOLDEN4
  neighbor $PEER_IP4 activate
  neighbor $PEER_IP4 send-community all
 exit-address-family
 !
 address-family ipv6 unicast
  network 2001:db8:1::/48 route-map GOLDEN6
  neighbor $PEER_IP4 activate
  neighbor $PEER_IP4 send-community all
 exit-address-family
exit
EOF
    # FRR drops privileges to the 'frr' user (created by the package)
    chown -R frr:frr "$WD"
    local common=(--vty_socket "$WD" -z "$WD/zserv.api" -u frr -g frr -P 0)
    bg zebra "$NS_A" /usr/lib/frr/zebra -f "$WD/zebra.conf" -i "$WD/zebra.pid" "${common[@]}"
    wait_until 15 "zebra socket" test -S "$WD/zserv.api"
    bg bgpd "$NS_A" /usr/lib/frr/bgpd -f "$WD/bgpd.conf" -i "$WD/bgpd.pid" "${common[@]}"
}

frr_vty() {
    local args=() c
    for c in "$@"; do args+=(-c "$c"); done
    vtysh --vty_socket "$WD" "${args[@]}"
}

start_bird() {
    local v4filter v6=""
    local attrs="bgp_med = 50; bgp_community.add((65001, 100)); bgp_community.add((65001, 200));
        bgp_large_community.add((65001, 1, 2)); bgp_large_community.add((65001, 3, 4));"
    local session="neighbor $PEER_IP4 as $PEER_AS;"
    if [[ $CASE == bird-as2 ]]; then
        # 2-octet-only speaker: no AS4 capability, AS_TRANS + AS4_PATH on the wire
        session="neighbor $PEER_IP4 as $PEER_AS; enable as4 off;"
        v4filter="if proto = \"s4a\" then { bgp_path.prepend(4200000001); $attrs accept; }
        if proto = \"s4b\" then { $attrs accept; }
        reject;"
    else
        v4filter="if proto = \"s4a\" || proto = \"s4b\" then { $attrs accept; } reject;"
        v6="ipv6 { import all; export filter { if proto = \"s6\" then { bgp_community.add((65001, 300)); accept; } reject; }; };"
    fi
    cat >"$WD/bird.conf" <<EOF
log "$WD/bird.log" all;
router id $X_IP4;
protocol device { scan time 10; }
protocol static s4a { ipv4; route 192.0.2.0/24 blackhole; }
protocol static s4b { ipv4; route 198.51.100.0/25 blackhole; }
protocol static s6 { ipv6; route 2001:db8:1::/48 blackhole; }
protocol bgp peer {
  local $X_IP4 as $X_AS;
  $session
  passive on;
  ipv4 {
    import all;
    export filter {
      $v4filter
    };
  };
  $v6
}
EOF
    bg bird "$NS_A" bird -f -c "$WD/bird.conf" -s "$WD/bird.ctl" -P "$WD/bird.pid"
}

x_birdc() { birdc -s "$WD/bird.ctl" "$@"; }

start_gobgp() {
    cat >"$WD/gobgpd.toml" <<EOF
[global.config]
  as = $X_AS
  router-id = "$X_IP4"
  port = 179

[[neighbors]]
  [neighbors.config]
    neighbor-address = "$PEER_IP4"
    peer-as = $PEER_AS
  [neighbors.transport.config]
    passive-mode = true
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
EOF
    # GoBGP puts the system host name into an FQDN capability: run it in its own UTS
    # namespace with a fixed host name, so the OPEN does not depend on the machine
    bg gobgpd "$NS_A" unshare --uts sh -c 'hostname pgcap-x && exec "$@"' sh \
        gobgpd -f "$WD/gobgpd.toml" -t toml --api-hosts "$GOBGP_API" --pprof-disable -l info
}

x_gobgp() { ip netns exec "$NS_A" gobgp -u "${GOBGP_API%:*}" -p "${GOBGP_API#*:}" "$@"; }

gobgp_announce() {
    local p
    for p in 192.0.2.0/24 198.51.100.0/25; do
        x_gobgp global rib -a ipv4 add "$p" origin igp med 50 \
            community 65001:100,65001:200 large-community 65001:1:2,65001:3:4
    done
    # explicit IPv6 next hop: the session runs over IPv4
    x_gobgp global rib -a ipv6 add 2001:db8:1::/48 origin igp nexthop "$X_IP6" community 65001:300
}

# --- one case -------------------------------------------------------------------

run_case() {
    CASE=$1
    local daemon=${CASE%-as2} out="$OUT_ROOT/$CASE"
    WD="$WORK/$CASE"
    mkdir -p "$WD"
    chmod 755 "$WD"
    log "=== case $CASE (daemon under test: $daemon) ==="
    setup_link
    start_tcpdump

    case $daemon in
        frr) start_frr ;;
        bird) start_bird ;;
        gobgp) start_gobgp ;;
        *) die "unknown case $CASE" ;;
    esac
    wait_until 30 "$daemon listening on port 179" listening "$NS_A"
    if [[ $daemon == gobgp ]]; then
        wait_until 15 "gobgp API" x_gobgp global
        gobgp_announce
    fi

    start_peer
    wait_until 60 "session Established" peer_established
    log "session established"

    # 1. initial announcements (+ End-of-RIB)
    wait_until 30 "192.0.2.0/24 at the peer" peer_has master4 192.0.2.0/24
    wait_until 30 "198.51.100.0/25 at the peer" peer_has master4 198.51.100.0/25
    if [[ $CASE != bird-as2 ]]; then
        try_until 15 "2001:db8:1::/48 at the peer" peer_has master6 2001:db8:1::/48
    else
        wait_until 30 "203.0.113.0/24 at X" x_has 203.0.113.0/24
    fi
    sleep 3

    # 2. withdraw 198.51.100.0/25 and 2001:db8:1::/48
    if [[ $CASE == bird-as2 ]]; then log "withdrawing 198.51.100.0/25"; else log "withdrawing 198.51.100.0/25 and 2001:db8:1::/48"; fi
    case $daemon in
        frr)
            frr_vty "configure terminal" "router bgp $X_AS" \
                "address-family ipv4 unicast" "no network 198.51.100.0/25" "exit-address-family" \
                "address-family ipv6 unicast" "no network 2001:db8:1::/48" "exit-address-family"
            ;;
        bird)
            x_birdc disable s4b
            [[ $CASE == bird-as2 ]] || x_birdc disable s6
            ;;
        gobgp)
            x_gobgp global rib -a ipv4 del 198.51.100.0/25
            x_gobgp global rib -a ipv6 del 2001:db8:1::/48
            ;;
    esac
    wait_until 30 "198.51.100.0/25 withdrawn at the peer" peer_lacks master4 198.51.100.0/25
    if [[ $CASE != bird-as2 ]]; then
        try_until 15 "2001:db8:1::/48 withdrawn at the peer" peer_lacks master6 2001:db8:1::/48
    fi
    sleep 3

    # 3. administrative shutdown with a shutdown communication
    log "shutting the session down"
    case $daemon in
        frr) frr_vty "configure terminal" "router bgp $X_AS" "neighbor $PEER_IP4 shutdown message $SHUTDOWN_MSG" ;;
        bird) x_birdc disable peer "\"$SHUTDOWN_MSG\"" ;;
        # "disable" sends no shutdown communication in gobgp 3.10; "shutdown" (deprecated) does
        gobgp) x_gobgp neighbor "$PEER_IP4" shutdown --reason "$SHUTDOWN_MSG" ;;
    esac
    wait_until 30 "session down at the peer" peer_not_established
    sleep 1

    # stop the capture first, so that reconnect attempts are not recorded
    stop_pids "$TCPDUMP_PID"
    log "peer view at the end:"
    peer_birdc show protocols all x >&2 || true
    teardown_case

    mkdir -p "$out"
    rm -f "$out"/*.hex "$out"/peer/*.hex "$out/capture.pcap"
    cp "$WD/capture.pcap" "$out/capture.pcap"
    python3 "$SPLIT" "$out/capture.pcap" --local "$X_IP4" --out "$out" --peer-out "$out/peer" --clean --first

    # sanity: X must have sent an OPEN, an UPDATE and a NOTIFICATION
    local k
    for k in open update notification; do
        compgen -G "$out/[0-9]*-$k*.hex" >/dev/null || die "$CASE: no $k message from the daemon under test"
    done
    log "case $CASE done: $(find "$out" -name '*.hex' | wc -l) messages"
}

CASES=("$@")
((${#CASES[@]})) || CASES=(frr bird gobgp bird-as2)
for c in "${CASES[@]}"; do
    case $c in frr | bird | gobgp | bird-as2) ;; *) die "unknown case '$c' (frr, bird, gobgp, bird-as2)" ;; esac
done
for c in "${CASES[@]}"; do
    run_case "$c"
done
log "all done; fixtures in $OUT_ROOT"
