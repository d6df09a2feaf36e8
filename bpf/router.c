// SPDX-License-Identifier: GPL-2.0
/*
 * podpeer's tc router: forwards IPv4 and IPv6 packets at tc ingress, so that
 * routed VIP traffic skips netfilter, conntrack and whatever source checks a
 * CNI hangs on the kernel's forward path.
 *
 * For each packet: parse Ethernet (and one 802.1Q/802.1ad tag), ask the
 * kernel's FIB where it goes (as if it had arrived on the ingress interface,
 * or on the interface the lookup_from map names for it), and then
 *  - route found, neighbor known: rewrite the MACs, decrement TTL / hop limit,
 *    bpf_redirect to the egress interface;
 *  - route found, neighbor unknown: decrement, bpf_redirect_neigh, which lets
 *    the kernel resolve the next hop and fill in the MACs;
 *  - anything else goes on to the kernel unchanged, which answers it as it
 *    always would (local delivery, ICMP time exceeded, fragmentation needed,
 *    unreachable).
 * Every packet is counted once, by outcome, in a per-CPU array.
 *
 * "Unchanged" returns TC_ACT_UNSPEC rather than TC_ACT_OK: the packet reaches
 * the kernel the same way, but tc filters and TCX programs after ours still see
 * it, so we never hide traffic from a CNI's own program on the same hook.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2
#define AF_INET6 10

/* IPv4 fragment bits (in frag_off, network order once swapped). */
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

#define NEXTHDR_HOP 0
#define NEXTHDR_FRAGMENT 44

/* Pass: on to the kernel, unchanged, and to any tc program after ours. */
#define PASS TC_ACT_UNSPEC

/* Headers we read: Ethernet, a tag, IPv6 (the longer), and the L4 ports. */
#define HEADERS_WANTED (ETH_HLEN + 4 + 40 + 4)

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* The counters' index. The loader (src/counters.rs) names them in this order. */
enum outcome {
	OUT_REDIRECTED,        /* forwarded with bpf_redirect */
	OUT_REDIRECTED_NEIGH,  /* forwarded with bpf_redirect_neigh */
	OUT_PASS_LOCAL,        /* FIB: not forwarded (a local address, or no route) */
	OUT_PASS_UNREACHABLE,  /* FIB: blackhole, unreachable or prohibit route */
	OUT_PASS_FWD_DISABLED, /* forwarding is off on the lookup interface */
	OUT_PASS_NOT_HOST,     /* not addressed to us at L2, or link-local / multicast */
	OUT_PASS_MTU,          /* larger than the egress MTU */
	OUT_PASS_TTL,          /* TTL or hop limit would expire */
	OUT_PASS_FRAG,         /* an IPv4 fragment or an IPv6 fragment header */
	OUT_PASS_OPTIONS,      /* IPv4 options or an IPv6 hop-by-hop header */
	OUT_PASS_ERROR,        /* malformed header, or a helper failed */
	OUT_PASS_NON_IP,       /* neither IPv4 nor IPv6 (ARP, LLDP, two tags...) */
	OUT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OUT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * ingress ifindex -> the ifindex to do the FIB lookup from. For devices whose
 * packets belong to another device's table (a VXLAN enslaved to a VRF: the
 * lookup must run from the VRF side). Absent: the ingress interface itself.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} lookup_from SEC(".maps");

static __always_inline int done(__u32 outcome, int verdict)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &outcome);

	if (n)
		*n += 1;
	return verdict;
}

static __always_inline __u32 lookup_ifindex(struct __sk_buff *skb)
{
	__u32 in = skb->ingress_ifindex;
	__u32 *mapped = bpf_map_lookup_elem(&lookup_from, &in);

	return mapped ? *mapped : in;
}

static __always_inline int outcome_of_lookup(long rc)
{
	switch (rc) {
	case BPF_FIB_LKUP_RET_NOT_FWDED:
		return OUT_PASS_LOCAL;
	case BPF_FIB_LKUP_RET_BLACKHOLE:
	case BPF_FIB_LKUP_RET_UNREACHABLE:
	case BPF_FIB_LKUP_RET_PROHIBIT:
		return OUT_PASS_UNREACHABLE;
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return OUT_PASS_FWD_DISABLED;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return OUT_PASS_MTU;
	default: /* UNSUPP_LWT, NO_SRC_ADDR, negative errors */
		return OUT_PASS_ERROR;
	}
}

/*
 * Sends the packet on, after a successful lookup (rc SUCCESS or NO_NEIGH) and
 * all checks. Only from here on is the packet changed: first the tag goes (the
 * egress interface is another L2 segment), then TTL / hop limit, then the MACs
 * (or the kernel's neighbor code writes them).
 */
static __always_inline int forward(struct __sk_buff *skb, struct bpf_fib_lookup *fib,
				   long rc, int v6, int tagged)
{
	/* Popping fails before it changes anything, so passing is still right. */
	if (tagged && bpf_skb_vlan_pop(skb))
		return done(OUT_PASS_ERROR, PASS);

	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if (v6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return done(OUT_PASS_ERROR, PASS);
		/*
		 * IPv6 has no header checksum, but a CHECKSUM_COMPLETE skb carries
		 * the sum of its bytes: keep it true for whoever receives it next.
		 */
		__be32 *word = (__be32 *)((void *)ip6 + 4);
		__be32 before = *word;

		ip6->hop_limit--;
		__be32 after = *word;

		bpf_csum_update(skb, bpf_csum_diff(&before, 4, &after, 4, 0));
	} else {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return done(OUT_PASS_ERROR, PASS);
		/*
		 * RFC 1624 incremental update: TTL is the high byte of its 16-bit
		 * word, so lowering it by one raises the checksum by 0x0100 (one's
		 * complement, end-around carry). The header's sum stays the same,
		 * so a CHECKSUM_COMPLETE skb stays valid too.
		 */
		__u32 check = (__u32)bpf_ntohs(ip->check) + 0x0100;

		ip->check = bpf_htons((__u16)(check + (check >> 16)));
		ip->ttl--;
	}

	long verdict;
	__u32 outcome;

	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
		verdict = bpf_redirect(fib->ifindex, 0);
		outcome = OUT_REDIRECTED;
	} else {
		/* The lookup left the next hop (maybe IPv6 for an IPv4 route) in dst. */
		struct bpf_redir_neigh nh = {};

		nh.nh_family = fib->family;
		if (fib->family == AF_INET6)
			__builtin_memcpy(nh.ipv6_nh, fib->ipv6_dst, sizeof(nh.ipv6_nh));
		else
			nh.ipv4_nh = fib->ipv4_dst;
		verdict = bpf_redirect_neigh(fib->ifindex, &nh, sizeof(nh), 0);
		outcome = OUT_REDIRECTED_NEIGH;
	}
	/* A refused redirect means a dropped packet: count it as an error. */
	return done(verdict == TC_ACT_REDIRECT ? outcome : OUT_PASS_ERROR, verdict);
}

static __always_inline void l4_ports(struct bpf_fib_lookup *fib, void *l4, void *end)
{
	__be16 *ports = l4;

	/* Ports feed the multipath hash, as they do in the kernel's own lookup. */
	if ((fib->l4_protocol == IPPROTO_TCP || fib->l4_protocol == IPPROTO_UDP) &&
	    (void *)(ports + 2) <= end) {
		fib->sport = ports[0];
		fib->dport = ports[1];
	}
}

static __always_inline int route4(struct __sk_buff *skb, __u32 l3off, int tagged)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + l3off;

	if ((void *)(ip + 1) > end)
		return done(OUT_PASS_ERROR, PASS);
	if (ip->version != 4 || ip->ihl < 5)
		return done(OUT_PASS_ERROR, PASS);
	if (skb->pkt_type != PACKET_HOST)
		return done(OUT_PASS_NOT_HOST, PASS);
	if (ip->ihl != 5)
		return done(OUT_PASS_OPTIONS, PASS);
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return done(OUT_PASS_FRAG, PASS);

	struct bpf_fib_lookup fib = {};
	__u8 ttl = ip->ttl;

	fib.family = AF_INET;
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = lookup_ifindex(skb);
	l4_ports(&fib, ip + 1, end);
	/*
	 * tot_len stays 0: then the helper checks the skb itself against the
	 * egress MTU, which knows about GSO (a GRO-merged skb is not too big).
	 */
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);

	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return done(outcome_of_lookup(rc), PASS);
	/* After the lookup, like the kernel: a local packet with TTL 1 is fine. */
	if (ttl <= 1)
		return done(OUT_PASS_TTL, PASS);
	return forward(skb, &fib, rc, 0, tagged);
}

static __always_inline int route6(struct __sk_buff *skb, __u32 l3off, int tagged)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + l3off;

	if ((void *)(ip6 + 1) > end)
		return done(OUT_PASS_ERROR, PASS);
	if (ip6->version != 6)
		return done(OUT_PASS_ERROR, PASS);
	if (skb->pkt_type != PACKET_HOST)
		return done(OUT_PASS_NOT_HOST, PASS);
	/*
	 * Multicast and link-local destinations, and link-local sources, never
	 * leave the link: the kernel answers them (or refuses them with an ICMP
	 * error about scope).
	 */
	__u8 d0 = ip6->daddr.in6_u.u6_addr8[0], d1 = ip6->daddr.in6_u.u6_addr8[1];
	__u8 s0 = ip6->saddr.in6_u.u6_addr8[0], s1 = ip6->saddr.in6_u.u6_addr8[1];

	if (d0 == 0xff || (d0 == 0xfe && (d1 & 0xc0) == 0x80) ||
	    (s0 == 0xfe && (s1 & 0xc0) == 0x80))
		return done(OUT_PASS_NOT_HOST, PASS);
	if (ip6->nexthdr == NEXTHDR_HOP)
		return done(OUT_PASS_OPTIONS, PASS);
	if (ip6->nexthdr == NEXTHDR_FRAGMENT)
		return done(OUT_PASS_FRAG, PASS);

	struct bpf_fib_lookup fib = {};
	__u8 hop_limit = ip6->hop_limit;

	fib.family = AF_INET6;
	fib.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
	fib.l4_protocol = ip6->nexthdr;
	__builtin_memcpy(fib.ipv6_src, &ip6->saddr, sizeof(fib.ipv6_src));
	__builtin_memcpy(fib.ipv6_dst, &ip6->daddr, sizeof(fib.ipv6_dst));
	fib.ifindex = lookup_ifindex(skb);
	l4_ports(&fib, ip6 + 1, end);

	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);

	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return done(outcome_of_lookup(rc), PASS);
	if (hop_limit <= 1)
		return done(OUT_PASS_TTL, PASS);
	return forward(skb, &fib, rc, 1, tagged);
}

SEC("classifier")
int podpeer_router(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	/* Headers outside the linear part (rare) are pulled in once. */
	if (data + HEADERS_WANTED > end && skb->len > (__u32)(end - data)) {
		bpf_skb_pull_data(skb, skb->len < HEADERS_WANTED ? skb->len : HEADERS_WANTED);
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
	}

	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return done(OUT_PASS_NON_IP, PASS);

	__be16 proto = eth->h_proto;
	__u32 l3off = ETH_HLEN;
	/* The kernel usually has moved the tag out of the frame already. */
	int tagged = skb->vlan_present;

	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vlan = (void *)(eth + 1);

		if ((void *)(vlan + 1) > end || tagged)
			return done(OUT_PASS_NON_IP, PASS);
		proto = vlan->encap_proto;
		l3off += sizeof(*vlan);
		tagged = 1;
	}

	if (proto == bpf_htons(ETH_P_IP))
		return route4(skb, l3off, tagged);
	if (proto == bpf_htons(ETH_P_IPV6))
		return route6(skb, l3off, tagged);
	return done(OUT_PASS_NON_IP, PASS);
}

char LICENSE[] SEC("license") = "GPL";
