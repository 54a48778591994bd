//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Network checks, used by both backends, attached to each workload's cgroup:
 * connect4/6 (TCP and connected UDP), sendmsg4/6 (unconnected UDP) deny with
 * EPERM; cgroup_skb/ingress drops a disallowed inbound TCP connection
 * request or UDP datagram; bind4/6 record which process node listens on
 * which port, since the ingress path runs without the listener's task, and
 * report each (node, port, protocol) once, for fingerprints' listening
 * sockets. A TCP connection request is dropped here only when no process
 * node of the workload may receive it: which node accepts it is decided
 * at accept (sysexit.h, both backends). Likewise a UDP datagram belongs to
 * the node of the task that receives it, decided at the receive
 * (udp_recv.bpf.c) where the kernel has its hooks (udp_at_receive below);
 * elsewhere to the node that bound the socket (or last sent on it).
 * IPv4-mapped IPv6 addresses are checked against the IPv4 rules.
 *
 * Protocols the policy cannot name (raw IP, UDP-Lite, ICMP ping, SCTP, ...)
 * are refused at socket creation (sock_create, EPERM; attached once, to
 * the root cgroup, see openSocketGuards in Go), dropped on the way in
 * (ingress) and out (egress). A socket from outside the workload used by
 * its task is the backend's: lsm/socket_sendmsg, or on the tracing
 * backend a root egress program that knows the sending task.
 *
 * Ingress takes the protocol, the local port and the state from the
 * receiving socket, not from the packet, so IPv6 extension headers change
 * nothing: a TCP listener's packets are checked (the SYN and the handshake
 * ACK), an established or connecting socket's are not; a UDP datagram is a
 * reply when it comes from the socket's connected peer or from a peer it
 * sent to (recorded in socket storage), else it is checked like one to a
 * listener, whatever port the socket is bound to.
 */
#include "include/udpsock.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Emit struct event into BTF for bpf2go -type event. */
const struct event *unused_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listener_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} listeners SEC(".maps");

/* note_send records that the socket of a UDP sendmsg let through (c,
 * egress) sent to its destination, so the answers are replies, and which
 * node sent; and that a TCP socket connected to port 53, whose answers
 * dns.h parses. A UDP connect records nothing: a connected socket hears
 * only its peer, which ingress reads from the socket (allocating socket
 * storage on every connect was most of a DNS lookup's cost here). */
static __always_inline void note_send(struct bpf_sock_addr *ctx, const struct conn *c, __u64 node,
				      bool connect)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk || (c->proto == IPPROTO_UDP ? connect : c->dport != DNS_PORT))
		return;
	struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, SK_STORAGE_CREATE);
	if (!si)
		return;
	if (c->proto != IPPROTO_UDP) {
		si->flags |= SI_DNS_TCP;
		return;
	}
	si->node = node;
	if (known_peer(si, c))
		return;
	__u32 i = si->next++ % MAX_PEERS;
	struct peer *p = &si->peers[i];
	__builtin_memcpy(p->addr, c->daddr, 16);
	p->port = c->dport;
	p->family = c->family;
}

static __always_inline int egress4(struct bpf_sock_addr *ctx, bool connect)
{
	__u32 proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 1;
	struct conn c = { .dir = DIR_EGRESS };
	sock_addr4(ctx, &c);
	__u64 node = current_node();
	if (!check_conn(&c, w, cgid, node, true))
		return 0;
	note_send(ctx, &c, node, connect);
	return 1;
}

static __always_inline int egress6(struct bpf_sock_addr *ctx, bool connect)
{
	__u32 proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 1;
	struct conn c = { .dir = DIR_EGRESS };
	sock_addr6(ctx, &c);
	__u64 node = current_node();
	if (!check_conn(&c, w, cgid, node, true))
		return 0;
	note_send(ctx, &c, node, connect);
	return 1;
}

SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx)
{
	return egress4(ctx, true);
}

SEC("cgroup/connect6")
int connect6(struct bpf_sock_addr *ctx)
{
	return egress6(ctx, true);
}

SEC("cgroup/sendmsg4")
int sendmsg4(struct bpf_sock_addr *ctx)
{
	return egress4(ctx, false);
}

SEC("cgroup/sendmsg6")
int sendmsg6(struct bpf_sock_addr *ctx)
{
	return egress6(ctx, false);
}

/* record_bind notes the process node bound to c's local address and port
 * (in daddr and dport), on the socket (for ingress, also when the port is
 * chosen later: bind to port 0) and by port, and reports it the first time,
 * for fingerprints. */
static __always_inline int record_bind(struct bpf_sock_addr *ctx, struct conn *c)
{
	if (c->proto != IPPROTO_TCP && c->proto != IPPROTO_UDP)
		return 1;
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 1;
	__u64 node = current_node();
	struct bpf_sock *sock = ctx->sk;
	if (sock) {
		struct sock_info *si = bpf_sk_storage_get(&sock_infos, sock, 0, SK_STORAGE_CREATE);
		if (si)
			si->node = node;
	}
	if (!c->dport)
		return 1;
	struct listener_key k = { .cgid = cgid, .port = c->dport, .proto = c->proto };
	bpf_map_update_elem(&listeners, &k, &node, BPF_ANY);
	report_listen(c, w, cgid, node);
	return 1;
}

SEC("cgroup/bind4")
int bind4(struct bpf_sock_addr *ctx)
{
	struct conn c = {};
	sock_addr4(ctx, &c);
	return record_bind(ctx, &c);
}

SEC("cgroup/bind6")
int bind6(struct bpf_sock_addr *ctx)
{
	struct conn c = {};
	sock_addr6(ctx, &c);
	return record_bind(ctx, &c);
}

#define TCP_LISTEN 10

/* Set by the engine once the UDP receive checks (udp_recv.bpf.c) run:
 * a datagram then belongs to the node of the task that receives it, and
 * ingress drops only what no node of the workload may receive. Unset
 * (kernels without their hooks), it belongs to the node bound to the
 * port, or that bound or last sent on the socket. */
volatile __u32 udp_at_receive;

/* dns_offset returns the offset of c's transport payload in skb (TCP: of
 * its DNS length prefix), or 0 when the transport header does not follow
 * the IP header at once (IPv6 extension headers, fragments). */
static __always_inline __u32 dns_offset(struct __sk_buff *skb, const struct conn *c)
{
	__u8 b[2];
	if (bpf_skb_load_bytes(skb, 0, b, 1))
		return 0;
	__u32 l4 = 40;
	if (b[0] >> 4 == 4) {
		__u8 frag[2];
		l4 = (b[0] & 0xf) * 4;
		if (bpf_skb_load_bytes(skb, 6, frag, 2) || (frag[0] & 0x3f) || frag[1])
			return 0;
	} else if (bpf_skb_load_bytes(skb, 6, b, 1) || b[0] != c->proto) {
		return 0;
	}
	if (c->proto == IPPROTO_UDP)
		return l4 + 8;
	if (bpf_skb_load_bytes(skb, (l4 & 0x3f) + 12, b, 1))
		return 0;
	return l4 + (b[0] >> 4) * 4;
}

/* dns_reply parses, for workload w (cgroup cgid), a DNS answer the socket
 * received from port 53 (c: addresses and ports from the packet) when the
 * caller found it a reply to what the socket sent (see dns.h): from the
 * peer a UDP socket is connected or sent to, or on a TCP connection the
 * workload opened to port 53. It never drops. */
static __always_inline int dns_reply(struct __sk_buff *skb, struct conn *c, bool reply,
				     struct workload *w, __u64 cgid)
{
	if (c->sport != DNS_PORT || !reply)
		return 1;
	__u32 off = dns_offset(skb, c);
	if (!off || off >= skb->len) {
		if (off != skb->len) /* a bare TCP segment (ACK, FIN) carries no answer */
			count_loss(cgid, LOSS_DNS);
		return 1;
	}
	__u32 len = skb->len - off;
	if (c->proto == IPPROTO_TCP) {
		/* One whole message, its length prefix first, fills the
		 * segment; a message split across segments is not trusted. */
		__u8 pfx[2];
		if (len < 2 || bpf_skb_load_bytes(skb, off, pfx, 2) || ((__u32)pfx[0] << 8 | pfx[1]) != len - 2) {
			count_loss(cgid, LOSS_DNS);
			return 1;
		}
		off += 2;
		len -= 2;
	}
	dns_answer(skb, off, len, w, cgid);
	return 1;
}

/* connected_peer reports whether c (ingress, addresses from the packet)
 * comes from the address a connected socket is connected to; an IPv6
 * socket's v4-mapped peer is compared as IPv4, as skb_addrs makes it. */
static __always_inline bool connected_peer(struct bpf_sock *sk, const struct conn *c)
{
	const __u32 *a = (const __u32 *)c->saddr;
	if (sk->family == AF_INET)
		return c->family == AF_INET && a[0] == sk->dst_ip4;
	__u32 p0 = sk->dst_ip6[0], p1 = sk->dst_ip6[1], p2 = sk->dst_ip6[2], p3 = sk->dst_ip6[3];
	if (c->family == AF_INET)
		return !p0 && !p1 && p2 == bpf_htonl(0x0000ffff) && a[0] == p3;
	return a[0] == p0 && a[1] == p1 && a[2] == p2 && a[3] == p3;
}

/* dns_connected parses what a connected socket receives from port 53:
 * a TCP connection or connected UDP socket the checks leave at once. */
static __always_inline int dns_connected(struct __sk_buff *skb, struct bpf_sock *sk, struct conn *c)
{
	__u64 cgid = 0;
	struct workload *w = skb_workload(skb, &cgid);
	if (!w || skb_addrs(skb, c))
		return 1;
	struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, 0);
	bool reply = c->proto == IPPROTO_UDP ? connected_peer(sk, c) || (si && known_peer(si, c))
					     : si && (si->flags & SI_DNS_TCP);
	return dns_reply(skb, c, reply, w, cgid);
}

SEC("cgroup_skb/ingress")
int ingress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb_sock(skb);
	struct conn c = { .dir = DIR_INGRESS };
	__u32 state = TCP_LISTEN, port = 0;
	if (sk) {
		sock_conn(sk, &c);
		state = sk->state;
		port = sk->src_port;
		/* DNS answers: parsed before the socket queues them. */
		if (!c.unnamed && sk->dst_port == bpf_htons(DNS_PORT) &&
		    (c.proto == IPPROTO_TCP ? state != TCP_LISTEN : state == UDP_CONNECTED))
			return dns_connected(skb, sk, &c);
		/* Most packets belong to connections: leave early. A TCP
		 * socket that is not listening got here by its own connect
		 * or accept; a connected UDP socket hears only its peer. */
		if (c.proto == IPPROTO_TCP && !c.unnamed && state != TCP_LISTEN)
			return 1;
		if (c.proto == IPPROTO_UDP && !c.unnamed && state == UDP_CONNECTED)
			return 1;
	} else {
		c.unnamed = 1; /* no socket to name the protocol: unknown */
	}
	__u64 cgid = 0;
	struct workload *w = skb_workload(skb, &cgid);
	if (!w)
		return 1;
	if (skb_addrs(skb, &c))
		return c.unnamed ? check_conn(&c, w, cgid, 0, false) : 1;
	if (c.unnamed)
		return check_conn(&c, w, cgid, 0, false);
	if (!sk)
		return 1; /* (unnamed above: the verifier cannot tell) */
	c.dport = port; /* the socket's own port, whatever the packet says */
	struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, 0);
	/* A reply to a datagram the socket sent is no connection. */
	if (si && c.proto == IPPROTO_UDP && known_peer(si, &c))
		return dns_reply(skb, &c, true, w, cgid);
	/* The node bound to the port (placement keeps these current), else
	 * the one that bound or last sent on the socket (a port chosen by
	 * the kernel). */
	__u64 node = si ? si->node : 0;
	struct listener_key lk = { .cgid = cgid, .port = c.dport, .proto = c.proto };
	__u64 *ln = bpf_map_lookup_elem(&listeners, &lk);
	if (ln)
		node = *ln;
	if (c.proto == IPPROTO_TCP || (udp_at_receive && !(si && (si->flags & SI_NO_SOURCE)))) {
		/* A TCP connection belongs to the process that accepts it,
		 * which sys_exit checks and reports (sysexit.h), a UDP
		 * datagram to the one that receives it when udp_recv.bpf.c
		 * runs and sees its source: here only what no node of the
		 * workload may receive is dropped, and reported with the
		 * listener's node. */
		c.any_node = 1;
		if (w->mode == MODE_OBSERVE || (w->flags & WL_NO_INGRESS) ||
		    rules_allow(&c, w->gen << 1 | DIR_INGRESS, node, 0))
			return 1;
	}
	return check_conn(&c, w, cgid, node, false);
}

/* sock_create refuses, in enforce mode, sockets of a protocol the policy
 * cannot name; it runs for user AF_INET and AF_INET6 sockets only.
 * Attached to the root cgroup, it also marks every such socket of the
 * host in user_socks for egress_backstop. */
SEC("cgroup/sock_create")
int sock_create(struct bpf_sock *sk)
{
	__u32 family = sk->family, type = sk->type, protocol = sk->protocol;
	if (nameable(type, protocol))
		return 1;
	struct user_sock *us = bpf_sk_storage_get(&user_socks, sk, 0, SK_STORAGE_CREATE);
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 1;
	__u64 node = current_node();
	if (us)
		us->node = node;
	struct conn c = { .family = family, .dir = DIR_EGRESS };
	unnamed_conn(&c, type, protocol);
	return check_conn(&c, w, cgid, node, true);
}

/* egress drops, in enforce mode, what a user socket of the workload of a
 * protocol the policy cannot name sends (one made before the policy came,
 * under observation); sock_create refuses new ones. TCP and UDP sockets
 * leave at once. It runs without the sending task (older kernels give
 * cgroup_skb programs none): the node is the socket's creator's. */
SEC("cgroup_skb/egress")
int egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb_sock(skb);
	if (!sk || nameable(sk->type, sk->protocol))
		return 1;
	struct user_sock *us = bpf_sk_storage_get(&user_socks, sk, 0, 0);
	if (!us)
		return 1;
	__u64 cgid = 0;
	struct workload *w = skb_workload(skb, &cgid);
	if (!w)
		return 1;
	return check_unnamed_send(skb, sk, w, cgid, us->node, false);
}
