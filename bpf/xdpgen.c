// SPDX-License-Identifier: GPL-2.0
/*
 * The forwarding benchmark's traffic generator (bpf/examples/forward-bench.rs),
 * not part of the router.
 *
 * Run with BPF_PROG_TEST_RUN and BPF_F_TEST_XDP_LIVE_FRAMES: the kernel builds
 * xdp_frames from one template frame (data_in) in a page pool, runs this
 * program on each and carries out its verdict for real. XDP_TX becomes a
 * redirect to the ctx's ingress interface, so the frames leave through that
 * interface's ndo_xdp_xmit: for a veth, straight into its peer's receive ring,
 * with no socket, no skb and no qdisc on the sending side. That is what lets
 * one core outrun a router core.
 *
 * The template must be Ethernet + IPv4 without options + UDP. The page pool
 * does not restore a recycled page's contents: a frame the router forwarded
 * comes back with its MACs rewritten and its TTL decremented. So the program
 * writes the template's headers (the `header` map, filled by the loader) over
 * every frame, and then spreads the frames over `flows` UDP source ports from
 * `base_port` on (the IPv4 header checksum does not cover them; the UDP
 * checksum is 0, "none"). With a nonzero `interval`, it paces the frames.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Set by the loader. */
volatile const __u32 flows = 1;
volatile const __u16 base_port = 10000;

#define HEADER_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr))

struct header {
	__u8 bytes[HEADER_LEN];
};

/* The template's Ethernet, IPv4 and UDP headers. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct header);
} header SEC(".maps");

/* Nanoseconds between frames, set (and changed while it runs) by the
 * loader; 0 sends as fast as the CPU can. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} interval SEC(".maps");

struct state {
	__u64 sent;    /* frames handed on, the flow rotation's position */
	__u64 next_ns; /* when the next frame is due (with interval_ns) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct state);
} state SEC(".maps");

static long wait_until(__u64 index, void *until)
{
	return bpf_ktime_get_ns() >= *(__u64 *)until;
}

/* Busy-waits until the next frame is due: a frame the veth ring has no room
 * for would be dropped and its page returned to the pool under a lock the
 * router core takes too, so offering far more than the router forwards would
 * slow the router down. After a stall, no catching up in a burst. */
static void pace(struct state *st, __u64 interval_ns)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 until = st->next_ns;

	if (until > now)
		bpf_loop(1 << 20, wait_until, &until, 0);
	else if (now - until > 64 * interval_ns)
		st->next_ns = now;
	st->next_ns += interval_ns;
}

SEC("xdp")
int podpeer_xdpgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	struct header *h;
	__u32 key = 0;
	struct state *st;
	__u64 *interval_ns;

	if ((void *)(udp + 1) > data_end)
		return XDP_ABORTED;
	h = bpf_map_lookup_elem(&header, &key);
	st = bpf_map_lookup_elem(&state, &key);
	interval_ns = bpf_map_lookup_elem(&interval, &key);
	if (!h || !st || !interval_ns)
		return XDP_ABORTED;
	__builtin_memcpy(data, h->bytes, HEADER_LEN);
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP)
		return XDP_ABORTED;
	if (flows > 1)
		udp->source = bpf_htons(base_port + (__u16)(st->sent % flows));
	st->sent += 1;
	if (*interval_ns)
		pace(st, *interval_ns);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
