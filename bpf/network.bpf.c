//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Network checks, used by both backends, attached to each workload's cgroup:
 * connect4/6 (TCP and connected UDP), sendmsg4/6 (unconnected UDP) deny with
 * EPERM; cgroup_skb/ingress drops a disallowed inbound TCP SYN or a UDP
 * datagram to a bound port; bind4/6 record which process node listens on
 * which port, since the ingress path runs without the listener's task, and
 * report each (node, port, protocol) once, for fingerprints' listening
 * sockets.
 *
 * Rules: an LPM trie per direction and family maps (generation, address) to
 * the mask of rules whose peers contain the address (Compile in Go stores
 * the exact set at every prefix, excepts included, so the longest match
 * decides); each rule then checks protocol, port range and process node.
 * IPv4-mapped IPv6 addresses are checked against the IPv4 rules.
 */
#include "include/bulwark.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Emit struct event into BTF for bpf2go -type event. */
const struct event *unused_event __attribute__((unused));

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct listener_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} listeners SEC(".maps");

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
};

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
	if (!nprocs) {
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

static __always_inline bool rules_allow(struct conn *c, __u32 gen_dir, __u64 node)
{
	struct rules_ctx x = {
		.mask = rules_for(c, gen_dir),
		.node = node,
		.gen_dir = gen_dir,
		.port = c->dport,
		.proto = c->proto,
	};
	if (!x.mask)
		return false;
	bpf_loop(MAX_RULES, rule_step, &x, 0);
	return x.allowed;
}

static __always_inline void emit_conn(struct conn *c, __u32 kind, __u64 cgid, __u64 node,
				      __u32 flags, bool has_task)
{
	/* A deviation's repeats (same workload, node, peer address, protocol
	 * and policy port; not the remote port of an inbound one) are only
	 * counted. */
	struct dev_count *slot = NULL;
	__u64 count = 1;
	if (flags & EV_DEVIATION) {
		struct dev_key k = {
			.cgid = cgid, .node = node,
			.kind_flags = kind << 16 | flags,
			.c = (__u32)c->proto << 16 | c->dport,
		};
		const __u8 *peer = c->dir == DIR_EGRESS ? c->daddr : c->saddr;
		__builtin_memcpy(&k.a, peer, 8);
		__builtin_memcpy(&k.b, peer + 8, 8);
		count = dev_occurred(&k, &slot);
		if (!count)
			return;
	}
	/* Network events stop before exe: a third of an exec event's size,
	 * so a burst of them fits the ring three times over. */
	struct event *e = bpf_ringbuf_reserve(&net_events, EVENT_CONN_SIZE, 0);
	if (!e) {
		count_loss(cgid, LOSS_EVENTS);
		dev_reported(slot, count, false);
		return;
	}
	__builtin_memset(e, 0, EVENT_CONN_SIZE);
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
	bpf_ringbuf_submit(e, 0);
	dev_reported(slot, count, true);
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
	if (mode != MODE_OBSERVE && !(wflags & off) &&
	    !rules_allow(c, gen << 1 | c->dir, node)) {
		flags = EV_DEVIATION;
		if (mode == MODE_ENFORCE)
			flags |= EV_BLOCKED;
	}
	if (flags) {
		emit_conn(c, kind, cgid, node, flags, has_task);
	} else {
		const __u8 *a = c->dir == DIR_EGRESS ? c->daddr : c->saddr;
		struct seen_key k = {
			.cgid = cgid,
			.a = node,
			.kind_gen = kind << 24 | (gen & 0xffffff),
			.d = (__u32)c->proto << 16 | c->dport,
		};
		__builtin_memcpy(&k.b, a, 8);
		__builtin_memcpy(&k.c, a + 8, 8);
		if (first_seen(&k))
			emit_conn(c, kind, cgid, node, flags, has_task);
	}
	return (flags & EV_BLOCKED) ? 0 : 1;
}

/* sock_addr4 and sock_addr6 fill c's family, protocol, port and address
 * from a sock_addr context: the destination of a connect or sendmsg, the
 * local address of a bind. IPv4-mapped IPv6 addresses become IPv4. */
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

static __always_inline int egress4(struct bpf_sock_addr *ctx)
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
	return check_conn(&c, w, cgid, current_node(), true);
}

static __always_inline int egress6(struct bpf_sock_addr *ctx)
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
	return check_conn(&c, w, cgid, current_node(), true);
}

SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx)
{
	return egress4(ctx);
}

SEC("cgroup/connect6")
int connect6(struct bpf_sock_addr *ctx)
{
	return egress6(ctx);
}

SEC("cgroup/sendmsg4")
int sendmsg4(struct bpf_sock_addr *ctx)
{
	return egress4(ctx);
}

SEC("cgroup/sendmsg6")
int sendmsg6(struct bpf_sock_addr *ctx)
{
	return egress6(ctx);
}

/* record_bind notes the process node bound to c's local address and port
 * (in daddr and dport) and reports it the first time, for fingerprints. */
static __always_inline int record_bind(struct conn *c)
{
	if (!c->dport || (c->proto != IPPROTO_TCP && c->proto != IPPROTO_UDP))
		return 1;
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 1;
	struct listener_key k = { .cgid = cgid, .port = c->dport, .proto = c->proto };
	__u64 node = current_node();
	bpf_map_update_elem(&listeners, &k, &node, BPF_ANY);
	struct seen_key sk = {
		.cgid = cgid,
		.a = node,
		.kind_gen = EVENT_LISTEN << 24 | (w->gen & 0xffffff),
		.d = (__u32)c->proto << 16 | c->dport,
	};
	if (first_seen(&sk))
		emit_conn(c, EVENT_LISTEN, cgid, node, 0, true);
	return 1;
}

SEC("cgroup/bind4")
int bind4(struct bpf_sock_addr *ctx)
{
	struct conn c = {};
	sock_addr4(ctx, &c);
	return record_bind(&c);
}

SEC("cgroup/bind6")
int bind6(struct bpf_sock_addr *ctx)
{
	struct conn c = {};
	sock_addr6(ctx, &c);
	return record_bind(&c);
}

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

SEC("cgroup_skb/ingress")
int ingress(struct __sk_buff *skb)
{
	/* Most packets are not connection requests: read the IPv4 header
	 * and, for TCP, the flags byte first, and leave early. */
	__u8 hdr[40];
	if (bpf_skb_load_bytes(skb, 0, hdr, 20))
		return 1;
	struct conn c = { .dir = DIR_INGRESS };
	__u32 l4;
	if (hdr[0] >> 4 == 4) {
		if ((hdr[6] & 0x1f) || hdr[7])
			return 1; /* a later fragment: the first one was checked */
		c.proto = hdr[9];
		l4 = (hdr[0] & 0xf) * 4;
		if (c.proto == IPPROTO_TCP) {
			__u8 flags;
			if (bpf_skb_load_bytes(skb, (l4 & 0x3f) + 13, &flags, 1) ||
			    (flags & 0x12) != 0x02)
				return 1;
		}
		c.family = AF_INET;
		__builtin_memcpy(c.saddr, &hdr[12], 4);
		__builtin_memcpy(c.daddr, &hdr[16], 4);
	} else if (hdr[0] >> 4 == 6) {
		if (bpf_skb_load_bytes(skb, 0, hdr, sizeof(hdr)))
			return 1;
		c.family = AF_INET6;
		c.proto = hdr[6];
		__builtin_memcpy(c.saddr, &hdr[8], 16);
		__builtin_memcpy(c.daddr, &hdr[24], 16);
		l4 = 40;
		if (c.saddr[10] == 0xff && c.saddr[11] == 0xff && !c.saddr[0] && !c.saddr[1] &&
		    !c.saddr[2] && !c.saddr[3] && !c.saddr[4] && !c.saddr[5] && !c.saddr[6] &&
		    !c.saddr[7] && !c.saddr[8] && !c.saddr[9]) {
			/* A v4-mapped source: check it against the IPv4 rules. */
			c.family = AF_INET;
			__builtin_memmove(c.saddr, &c.saddr[12], 4);
			__builtin_memset(&c.saddr[4], 0, 12);
			__builtin_memmove(c.daddr, &c.daddr[12], 4);
			__builtin_memset(&c.daddr[4], 0, 12);
		}
	} else {
		return 1;
	}
	if (c.proto != IPPROTO_TCP && c.proto != IPPROTO_UDP)
		return 1;
	__u8 l4h[14];
	if (bpf_skb_load_bytes(skb, l4 & 0x3f, l4h, c.proto == IPPROTO_TCP ? 14 : 4))
		return 1;
	c.sport = (__u16)l4h[0] << 8 | l4h[1];
	c.dport = (__u16)l4h[2] << 8 | l4h[3];
	/* TCP: only a connection request (SYN without ACK). */
	if (c.proto == IPPROTO_TCP && (l4h[13] & 0x12) != 0x02)
		return 1;
	__u64 cgid = 0;
	struct workload *w = skb_workload(skb, &cgid);
	if (!w)
		return 1;
	struct listener_key lk = { .cgid = cgid, .port = c.dport, .proto = c.proto };
	__u64 *ln = bpf_map_lookup_elem(&listeners, &lk);
	/* UDP: only datagrams to a port a process of the workload bound;
	 * replies to its own outgoing datagrams are not connections. */
	if (c.proto == IPPROTO_UDP && !ln)
		return 1;
	return check_conn(&c, w, cgid, ln ? *ln : 0, false);
}
