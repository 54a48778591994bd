/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the network checks know of a workload's sockets, shared by the
 * per-cgroup programs (network.bpf.c) and the UDP receive checks
 * (udp_recv.bpf.c): socket storage pinned by name, so both read the same,
 * with the peers a UDP socket sent to (their datagrams are replies), and
 * the reading of a sock_addr context into a struct conn.
 */
#ifndef __BULWARK_UDPSOCK_H__
#define __BULWARK_UDPSOCK_H__

#include "netcheck.h"

#define MAX_PEERS 8 /* peers of one UDP socket whose datagrams are replies */
#define UDP_CONNECTED 1 /* TCP_ESTABLISHED */

/* A peer a UDP socket sent to, as struct conn holds addresses. */
struct peer {
	__u8 addr[16];
	__u16 port;
	__u16 family;
};

/* What the network checks know of one socket of a workload. */
struct sock_info {
	__u64 node;  /* process node that last bound or sent */
	__u32 next;  /* peer slot written next (round robin) */
	__u32 flags; /* SI_* */
	struct peer peers[MAX_PEERS];
};

struct {
	__uint(type, MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_infos SEC(".maps");

#define SI_DNS_TCP 1 /* a TCP socket the workload connected to port 53 */
/* A UDP socket read without asking for the source (tracing backend): the
 * receive check cannot decide its datagrams, so ingress does, for the node
 * bound to its port, as where the receive hooks are missing. */
#define SI_NO_SOURCE 2

/* same_peer reports whether c's remote end (egress: the destination,
 * ingress: the source) is p. */
static __always_inline bool same_peer(const struct peer *p, const struct conn *c)
{
	const __u8 *a = c->dir == DIR_EGRESS ? c->daddr : c->saddr;
	__u16 port = c->dir == DIR_EGRESS ? c->dport : c->sport;
	if (p->port != port || p->family != c->family)
		return false;
	const __u64 *x = (const __u64 *)p->addr, *y = (const __u64 *)a;
	return x[0] == y[0] && x[1] == y[1];
}

static __always_inline bool known_peer(const struct sock_info *si, const struct conn *c)
{
	for (int i = 0; i < MAX_PEERS; i++)
		if (same_peer(&si->peers[i], c))
			return true;
	return false;
}

/* sock_addr4 and sock_addr6 fill c's family, protocol, port and address
 * from a sock_addr context: the destination of a connect or sendmsg, the
 * local address of a bind, the source of a recvmsg. IPv4-mapped IPv6
 * addresses become IPv4. */
static __always_inline void sock_addr4(struct bpf_sock_addr *ctx, struct conn *c)
{
	__u32 ip = ctx->user_ip4, port = ctx->user_port;
	c->family = AF_INET;
	c->proto = ctx->protocol;
	c->dport = bpf_ntohs((__u16)port);
	__builtin_memcpy(c->daddr, &ip, 4);
}

static __always_inline void sock_addr6(struct bpf_sock_addr *ctx, struct conn *c)
{
	/* Read the context into locals first: the verifier rejects
	 * arithmetic on the context pointer. */
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
	__u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
	__u32 port = ctx->user_port;
	c->family = AF_INET6;
	c->proto = ctx->protocol;
	c->dport = bpf_ntohs((__u16)port);
	if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0x0000ffff)) {
		c->family = AF_INET;
		__builtin_memcpy(c->daddr, &a3, 4);
	} else {
		__builtin_memcpy(c->daddr, &a0, 4);
		__builtin_memcpy(c->daddr + 4, &a1, 4);
		__builtin_memcpy(c->daddr + 8, &a2, 4);
		__builtin_memcpy(c->daddr + 12, &a3, 4);
	}
}

#endif /* __BULWARK_UDPSOCK_H__ */
