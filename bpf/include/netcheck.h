/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The network decision shared by the per-cgroup programs (network.bpf.c)
 * and the lsm backend's socket hooks (socket_lsm.bpf.c): the rule tables,
 * pinned by name so both objects use the same ones, the rule check and the
 * report.
 *
 * Rules: an LPM trie per direction and family maps (generation, address) to
 * the mask of rules whose peers contain the address (Compile in Go stores
 * the exact set at every prefix, excepts included, so the longest match
 * decides); each rule then checks protocol, port range and process node.
 * A connection over a protocol the policy cannot name (raw IP, AF_PACKET,
 * UDP-Lite, ICMP ping, anything but TCP and UDP) matches no rule.
 */
#ifndef __BULWARK_NETCHECK_H__
#define __BULWARK_NETCHECK_H__

#include "bulwark.h"
#include "vmlinux_net.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_MPTCP 262 /* a TCP socket to the policy: its subflows are TCP */
#define IPPROTO_RAW 255   /* reported for SOCK_RAW sockets, whatever their protocol */
#define AF_PACKET 17
#define AF_XDP 44
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3
#define DIR_EGRESS 0
#define DIR_INGRESS 1

#define LPM_MAP(name, keytype)                          \
	struct {                                            \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);            \
		__uint(max_entries, 16384);                     \
		__uint(map_flags, BPF_F_NO_PREALLOC);           \
		__type(key, keytype);                           \
		__type(value, __u64);                           \
		__uint(pinning, LIBBPF_PIN_BY_NAME);            \
	} name SEC(".maps")

LPM_MAP(egress_v4, struct lpm_v4_key);
LPM_MAP(egress_v6, struct lpm_v6_key);
LPM_MAP(ingress_v4, struct lpm_v4_key);
LPM_MAP(ingress_v6, struct lpm_v6_key);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rule_key);
	__type(value, struct rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} net_rules SEC(".maps");

/* One connection as the checks see it. For egress the policy address and
 * port are the destination; for ingress the source address and the local
 * (destination) port. */
struct conn {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 proto;
	__u8 dir;
	__u8 unnamed; /* a protocol the policy cannot name: no rule allows it */
	__u8 any_node; /* allowed when a rule gives it to any process node */
};

/* unmap_v4 turns a v4-mapped IPv6 address (::ffff:a.b.c.d) into its IPv4
 * form in place, the address in the first 4 bytes and zeros after, so it
 * is checked against the IPv4 rules; it reports whether it did. */
static __always_inline bool unmap_v4(__u8 addr[16])
{
	if (*(__u64 *)addr || *(__u32 *)&addr[8] != bpf_htonl(0x0000ffff))
		return false;
	__builtin_memmove(addr, &addr[12], 4);
	__builtin_memset(&addr[4], 0, 12);
	return true;
}

#include "dns.h"

/* unnamed_conn makes c a socket of a protocol the policy cannot name, as
 * events report it: raw sockets as IPPROTO_RAW with the IP protocol as
 * the port, others by their protocol. */
static __always_inline void unnamed_conn(struct conn *c, __u32 type, __u32 protocol)
{
	c->unnamed = 1;
	c->proto = type == SOCK_RAW ? IPPROTO_RAW : (__u8)protocol;
	c->dport = type == SOCK_RAW ? protocol : 0;
}

/* nameable reports whether a socket of this type and protocol (as the
 * kernel records them in sk_type and sk_protocol) is one the policy can
 * name: a TCP stream or a UDP datagram socket. */
static __always_inline bool nameable(__u32 type, __u32 protocol)
{
	return (type == SOCK_STREAM && (protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP)) ||
	       (type == SOCK_DGRAM && protocol == IPPROTO_UDP);
}

static __always_inline __u64 rules_for(struct conn *c, __u32 gen_dir)
{
	const __u8 *addr = c->dir == DIR_EGRESS ? c->daddr : c->saddr;
	__u64 *mask;
	if (c->family == AF_INET) {
		struct lpm_v4_key k = { .prefixlen = 64, .gen_dir = gen_dir };
		__builtin_memcpy(k.addr, addr, 4);
		mask = bpf_map_lookup_elem(c->dir == DIR_EGRESS ? (void *)&egress_v4 : (void *)&ingress_v4, &k);
	} else {
		struct lpm_v6_key k = { .prefixlen = 160, .gen_dir = gen_dir };
		__builtin_memcpy(k.addr, addr, 16);
		mask = bpf_map_lookup_elem(c->dir == DIR_EGRESS ? (void *)&egress_v6 : (void *)&ingress_v6, &k);
	}
	return mask ? *mask : 0;
}

struct rules_ctx {
	__u64 mask;
	__u64 node;
	__u32 gen_dir;
	__u16 port;
	__u8 proto;
	__u8 allowed;
	__u8 any_node;
};

/* rule_step tests rule i when the address matched it (a bpf_loop
 * callback, verified once rather than once per rule). */
static long rule_step(__u32 i, void *data)
{
	struct rules_ctx *x = data;
	if (!(x->mask >> i))
		return 1;
	if (!((x->mask >> i) & 1))
		return 0;
	struct rule_key rk = { .gen_dir = x->gen_dir, .index = i };
	struct rule *r = bpf_map_lookup_elem(&net_rules, &rk);
	if (!r)
		return 0;
	bool ok = false;
	__u32 np = r->nports;
	for (__u32 j = 0; j < np && j < MAX_PORTS; j++) {
		struct port_range *p = &r->ports[j];
		if ((!p->proto || p->proto == x->proto) && x->port >= p->lo && x->port <= p->hi) {
			ok = true;
			break;
		}
	}
	if (!ok)
		return 0;
	__u32 nprocs = r->nprocs;
	if (!nprocs || x->any_node) {
		x->allowed = 1;
		return 1;
	}
	for (__u32 j = 0; j < nprocs && j < MAX_PROCS; j++) {
		if (r->procs[j] == x->node) {
			x->allowed = 1;
			return 1;
		}
	}
	return 0;
}

/* rules_allow reports whether a rule of gen_dir allows c from process node:
 * one whose peers contain c's address, or one of extra (the rules a DNS
 * grant of the address gives, dns.h). */
static __always_inline bool rules_allow(struct conn *c, __u32 gen_dir, __u64 node, __u64 extra)
{
	struct rules_ctx x = {
		.mask = rules_for(c, gen_dir) | extra,
		.node = node,
		.gen_dir = gen_dir,
		.port = c->dport,
		.proto = c->proto,
		.any_node = c->any_node,
	};
	if (!x.mask)
		return false;
	bpf_loop(MAX_RULES, rule_step, &x, 0);
	return x.allowed;
}

/* conn_port_key is the family, protocol and port part of c's seen and
 * deviation keys: the family keeps 0.0.0.0 apart from ::, whose address
 * bytes are the same (glibc's getaddrinfo connects UDP to both). */
static __always_inline __u32 conn_port_key(const struct conn *c)
{
	return (__u32)(c->family & 0xff) << 24 | (__u32)c->proto << 16 | c->dport;
}

/* fill_conn fills network event e (zeroed) for c. */
static __always_inline void fill_conn(struct event *e, struct conn *c, __u32 kind, __u64 cgid,
				      __u64 node, __u32 flags, __u64 count, bool has_task)
{
	e->time_ns = bpf_ktime_get_ns();
	e->cgid = cgid;
	e->node = node;
	e->count = count;
	e->kind = kind;
	e->flags = flags;
	if (has_task) {
		__u64 ug = bpf_get_current_uid_gid();
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		e->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
		e->pid = bpf_get_current_pid_tgid() >> 32;
		e->uid = (__u32)ug;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	}
	e->family = c->family;
	e->proto = c->proto;
	e->sport = c->sport;
	e->dport = c->dport;
	__builtin_memcpy(e->saddr, c->saddr, 16);
	__builtin_memcpy(e->daddr, c->daddr, 16);
}

/* emit_conn reports c; g, when set, is the DNS grant that names its peer
 * (the event carries the name and is EV_NAMED). */
static __always_inline void emit_conn(struct conn *c, __u32 kind, __u64 cgid, __u64 node,
				      __u32 flags, bool has_task, const struct dns_grant *g)
{
	/* A deviation's repeats (same workload, node, peer address and name,
	 * protocol and policy port; not the remote port of an inbound one)
	 * are only counted. */
	struct dev_count *slot = NULL;
	__u64 count = 1;
	if (g)
		flags |= EV_NAMED;
	if (flags & EV_DEVIATION) {
		struct dev_key k = {
			.cgid = cgid, .node = node,
			.kind_flags = kind << 16 | flags,
			.c = conn_port_key(c),
			.name = g ? g->name_hash : 0,
		};
		const __u8 *peer = c->dir == DIR_EGRESS ? c->daddr : c->saddr;
		__builtin_memcpy(&k.a, peer, 8);
		__builtin_memcpy(&k.b, peer + 8, 8);
		count = dev_occurred(&k, &slot);
		if (!count)
			return;
	}
	/* Network events stop before exe (a named one after it, where the
	 * name goes): a third of an exec event's size, so a burst of them
	 * fits the ring three times over. */
	struct event *e;
	if (g) {
		e = bpf_ringbuf_reserve(&net_events, EVENT_NAMED_SIZE, 0);
		if (e) {
			__builtin_memset(e, 0, EVENT_CONN_SIZE);
			fill_conn(e, c, kind, cgid, node, flags, count, has_task);
			__builtin_memcpy(e->exe, g->name, DNS_NAME_LEN);
			bpf_ringbuf_submit(e, 0);
		}
	} else {
		e = bpf_ringbuf_reserve(&net_events, EVENT_CONN_SIZE, 0);
		if (e) {
			__builtin_memset(e, 0, EVENT_CONN_SIZE);
			fill_conn(e, c, kind, cgid, node, flags, count, has_task);
			bpf_ringbuf_submit(e, 0);
		}
	}
	if (!e)
		count_loss(cgid, LOSS_EVENTS);
	dev_reported(slot, count, e != NULL);
}

/* check_conn decides c for workload w (cgroup cgid) made or accepted by
 * process node, reports it and returns 1 to let it through, 0 to block. */
static __always_inline int check_conn(struct conn *c, struct workload *w, __u64 cgid,
				      __u64 node, bool has_task)
{
	__u32 gen = w->gen, mode = w->mode, wflags = w->flags;
	__u32 off = c->dir == DIR_EGRESS ? WL_NO_EGRESS : WL_NO_INGRESS;
	__u32 flags = 0;
	__u32 kind = c->dir == DIR_EGRESS ? EVENT_CONNECT : EVENT_ACCEPT;
	if (c->unnamed)
		kind = EVENT_SOCKET;
	/* The name the workload resolved the destination from, if any:
	 * reported in every mode, and its rules allow the connection. */
	struct dns_grant *g = NULL;
	if (c->dir == DIR_EGRESS && !c->unnamed)
		g = dns_grant_for(c, w, gen);
	if (mode != MODE_OBSERVE && !(wflags & off) &&
	    (c->unnamed || !rules_allow(c, gen << 1 | c->dir, node, g ? g->rules : 0))) {
		flags = EV_DEVIATION;
		if (mode == MODE_ENFORCE)
			flags |= EV_BLOCKED;
	}
	if (flags) {
		emit_conn(c, kind, cgid, node, flags, has_task, g);
	} else {
		const __u8 *a = c->dir == DIR_EGRESS ? c->daddr : c->saddr;
		struct seen_key k = {
			.cgid = cgid,
			.a = node,
			.kind_gen = kind << 24 | (gen & 0xffffff),
			.d = conn_port_key(c),
			.name = g ? g->name_hash : 0,
		};
		__builtin_memcpy(&k.b, a, 8);
		__builtin_memcpy(&k.c, a + 8, 8);
		if (first_seen(&k))
			emit_conn(c, kind, cgid, node, flags, has_task, g);
	}
	return (flags & EV_BLOCKED) ? 0 : 1;
}

/* report_listen reports, the first time, that process node (of workload
 * w, cgroup cgid) listens on c's local address and port (daddr, dport). */
static __always_inline void report_listen(struct conn *c, struct workload *w, __u64 cgid,
					  __u64 node)
{
	struct seen_key sk = {
		.cgid = cgid,
		.a = node,
		.kind_gen = EVENT_LISTEN << 24 | (w->gen & 0xffffff),
		.d = conn_port_key(c),
	};
	if (first_seen(&sk))
		emit_conn(c, EVENT_LISTEN, cgid, node, 0, true, NULL);
}

/* Sockets of protocols the policy cannot name that user space created
 * while the engine ran, with the creator's node (the kernel's own, which
 * send ICMP errors and TCP resets on behalf of whatever task is current,
 * are not in it): marked by sock_create, read by the egress backstops. */
struct user_sock {
	__u64 node;
};

struct {
	__uint(type, MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct user_sock);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} user_socks SEC(".maps");

/* skb_workload returns the workload of the socket of a cgroup_skb packet
 * (its cgroup or the nearest armed ancestor), filling cgid; or NULL. */
static __always_inline struct workload *skb_workload(struct __sk_buff *skb, __u64 *cgid)
{
	__u64 id = bpf_skb_cgroup_id(skb);
	struct workload *w = bpf_map_lookup_elem(&workloads, &id);
	if (w) {
		*cgid = id;
		return w;
	}
	__u32 zero = 0;
	struct engine_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || !cfg->level_mask)
		return NULL;
	__u32 mask = cfg->level_mask;
	for (int l = MAX_LEVEL - 1; l >= 1; l--) {
		if (!(mask & (1U << l)))
			continue;
		id = bpf_skb_ancestor_cgroup_id(skb, l);
		if (!id)
			continue;
		w = bpf_map_lookup_elem(&workloads, &id);
		if (w) {
			*cgid = id;
			return w;
		}
	}
	return NULL;
}

/* skb_addrs fills c's family and addresses from the IP header (the
 * fixed part: extension headers do not matter) and, when the transport
 * header follows it directly, the ports; v4-mapped IPv6 becomes IPv4. */
static __always_inline int skb_addrs(struct __sk_buff *skb, struct conn *c)
{
	__u8 hdr[40];
	if (bpf_skb_load_bytes(skb, 0, hdr, 20))
		return -1;
	__u32 l4 = 0;
	__u8 next;
	if (hdr[0] >> 4 == 4) {
		c->family = AF_INET;
		next = hdr[9];
		if (!(hdr[6] & 0x1f) && !hdr[7]) /* not a later fragment */
			l4 = (hdr[0] & 0xf) * 4;
		__builtin_memcpy(c->saddr, &hdr[12], 4);
		__builtin_memcpy(c->daddr, &hdr[16], 4);
	} else if (hdr[0] >> 4 == 6) {
		if (bpf_skb_load_bytes(skb, 0, hdr, sizeof(hdr)))
			return -1;
		c->family = AF_INET6;
		next = hdr[6];
		l4 = 40;
		__builtin_memcpy(c->saddr, &hdr[8], 16);
		__builtin_memcpy(c->daddr, &hdr[24], 16);
		if (c->saddr[10] == 0xff && c->saddr[11] == 0xff && !c->saddr[0] && !c->saddr[1] &&
		    !c->saddr[2] && !c->saddr[3] && !c->saddr[4] && !c->saddr[5] && !c->saddr[6] &&
		    !c->saddr[7] && !c->saddr[8] && !c->saddr[9]) {
			/* A v4-mapped source: check it against the IPv4 rules. */
			c->family = AF_INET;
			__builtin_memmove(c->saddr, &c->saddr[12], 4);
			__builtin_memset(&c->saddr[4], 0, 12);
			__builtin_memmove(c->daddr, &c->daddr[12], 4);
			__builtin_memset(&c->daddr[4], 0, 12);
		}
	} else {
		return -1;
	}
	if (c->unnamed) {
		c->dport = next; /* raw: the IP protocol, reported as the port */
		return 0;
	}
	__u8 ports[4];
	if (l4 && next == c->proto && !bpf_skb_load_bytes(skb, l4 & 0x3f, ports, 4)) {
		c->sport = (__u16)ports[0] << 8 | ports[1];
		c->dport = (__u16)ports[2] << 8 | ports[3];
	}
	return 0;
}

/* sock_conn sets c's protocol from the socket: TCP or UDP, or unnamed
 * (raw sockets report IPPROTO_RAW, others their protocol). */
static __always_inline void sock_conn(struct bpf_sock *sk, struct conn *c)
{
	__u32 type = sk->type, protocol = sk->protocol;
	if (nameable(type, protocol)) {
		c->proto = type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
		return;
	}
	unnamed_conn(c, type, protocol);
}

/* skb_sock returns the socket of a cgroup_skb packet (for ingress the
 * receiving one: for a TCP connection request the listener), or NULL. */
static __always_inline struct bpf_sock *skb_sock(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return NULL;
	return bpf_sk_fullsock(sk);
}

/* check_unnamed_send decides a packet sk sends over a protocol the policy
 * cannot name, for workload w (cgroup cgid) and process node. */
static __always_inline int check_unnamed_send(struct __sk_buff *skb, struct bpf_sock *sk,
					      struct workload *w, __u64 cgid, __u64 node,
					      bool has_task)
{
	struct conn c = { .dir = DIR_EGRESS };
	sock_conn(sk, &c);
	if (skb_addrs(skb, &c))
		c.family = sk->family;
	return check_conn(&c, w, cgid, node, has_task);
}

#endif /* __BULWARK_NETCHECK_H__ */
