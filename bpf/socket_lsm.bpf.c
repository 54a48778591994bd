//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The lsm backend's socket checks, by the calling task rather than by the
 * socket's cgroup (which the per-cgroup programs in network.bpf.c follow):
 *
 * - socket_create refuses, in enforce mode, sockets of every family but
 *   AF_UNIX, AF_NETLINK and AF_ALG (local) and AF_INET and AF_INET6 (which
 *   cgroup/sock_create decides): AF_PACKET and AF_XDP carry raw frames no
 *   cgroup program sees, AF_VSOCK, AF_CAN, AF_BLUETOOTH, AF_TIPC, ... reach
 *   peers the policy cannot name.
 * - socket_connect and socket_sendmsg check a socket created outside the
 *   workload and used inside (passed in with SCM_RIGHTS, inherited): its
 *   cgroup programs are not the workload's. One of a protocol the policy
 *   cannot name (raw) is refused in enforce mode. A socket of the caller's own
 *   workload cgroup is left to the cgroup programs, which checked it. A
 *   send without an address on a connected socket checks its peer: allowed
 *   by an egress rule, or by an ingress rule to its local port (a
 *   connection accepted from a passed-in listener).
 */
#include "include/netcheck.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EPERM 1
#define AF_UNIX 1
#define AF_NETLINK 16
#define AF_ALG 38

/* in_workload reports whether cgroup cg is cgid or below it. */
static __always_inline bool in_workload(struct cgroup *cg, __u64 cgid)
{
	for (int i = 0; i < MAX_LEVEL && cg; i++) {
		if (BPF_CORE_READ(cg, kn, id) == cgid)
			return true;
		cg = (struct cgroup *)BPF_CORE_READ(cg, self.parent);
	}
	return false;
}

/* passed_in returns the socket of sock when the caller is in a workload
 * and the socket is an AF_INET or AF_INET6 socket from outside the
 * caller's workload cgroup, filling w and cgid; NULL otherwise. */
static __always_inline struct sock *passed_in(struct socket *sock, struct workload **w, __u64 *cgid)
{
	*w = current_workload(cgid);
	if (!*w)
		return NULL;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	if (in_workload(BPF_CORE_READ(sk, sk_cgrp_data.cgroup), *cgid))
		return NULL;
	return sk;
}

static __always_inline bool sock_nameable(struct sock *sk)
{
	return nameable(BPF_CORE_READ(sk, sk_type), BPF_CORE_READ(sk, sk_protocol));
}

/* sockaddr_conn fills c's destination from a kernel copy of a sockaddr;
 * it returns -1 for families other than AF_INET and AF_INET6. */
static __always_inline int sockaddr_conn(const void *addr, int len, struct conn *c)
{
	__u8 sa[24] = {};
	if (!addr || len < 16 || bpf_probe_read_kernel(sa, len < 24 ? 16 : 24, addr))
		return -1;
	__u16 family = *(__u16 *)sa;
	c->dport = (__u16)sa[2] << 8 | sa[3];
	if (family == AF_INET) {
		c->family = AF_INET;
		__builtin_memcpy(c->daddr, &sa[4], 4);
		return 0;
	}
	if (family != AF_INET6 || len < 24)
		return -1;
	c->family = AF_INET6;
	__builtin_memcpy(c->daddr, &sa[8], 16);
	if (unmap_v4(c->daddr))
		c->family = AF_INET;
	return 0;
}

/* unnamed_use decides the use of a passed-in socket of a protocol the
 * policy cannot name (a raw socket: the workload's cgroup programs never
 * see its packets) to address (NULL: none): 0 to let it through, -EPERM. */
static __always_inline int unnamed_use(struct sock *sk, struct workload *w, __u64 cgid,
				       const void *address, int addrlen)
{
	__u16 type = BPF_CORE_READ(sk, sk_type), protocol = BPF_CORE_READ(sk, sk_protocol);
	struct conn c = { .family = BPF_CORE_READ(sk, __sk_common.skc_family), .dir = DIR_EGRESS };
	sockaddr_conn(address, addrlen, &c);
	unnamed_conn(&c, type, protocol);
	return check_conn(&c, w, cgid, current_node(), true) ? 0 : -EPERM;
}

static __always_inline __u8 sock_proto(struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_type) == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
}

SEC("lsm/socket_create")
int BPF_PROG(check_socket_create, int family, int type, int protocol, int kern, int ret)
{
	if (ret || kern || family == AF_UNIX || family == AF_INET || family == AF_INET6 ||
	    family == AF_NETLINK || family == AF_ALG)
		return ret;
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 0;
	struct conn c = { .family = family, .dir = DIR_EGRESS, .unnamed = 1 };
	return check_conn(&c, w, cgid, current_node(), true) ? 0 : -EPERM;
}

/* check_passed decides a connect (msg NULL: to address) or a send (msg) on
 * a passed-in socket by the calling task: 0 to let it through, -EPERM. */
static __always_inline int check_passed(struct socket *sock, void *address, int addrlen,
					struct msghdr *msg)
{
	struct workload *w;
	__u64 cgid = 0;
	struct sock *sk = passed_in(sock, &w, &cgid);
	if (!sk)
		return 0;
	if (msg) {
		address = BPF_CORE_READ(msg, msg_name);
		addrlen = BPF_CORE_READ(msg, msg_namelen);
	}
	if (!sock_nameable(sk))
		return unnamed_use(sk, w, cgid, address, addrlen);
	struct conn c = { .dir = DIR_EGRESS, .proto = sock_proto(sk) };
	__u64 node = current_node();
	if (!sockaddr_conn(address, addrlen, &c))
		return check_conn(&c, w, cgid, node, true) ? 0 : -EPERM;
	/* A connect to AF_UNSPEC disconnects; a send without an address goes
	 * to the connected peer (none: it fails anyway). */
	__be16 dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
	if (!msg || !dport)
		return 0;
	c.dport = bpf_ntohs(dport);
	if (BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET) {
		c.family = AF_INET;
		__be32 a = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(c.daddr, &a, 4);
	} else {
		struct sockaddr6_buf {
			__u16 family;
			__u16 port;
			__u32 flow;
			__u8 addr[16];
		} b = { .family = AF_INET6, .port = dport };
		BPF_CORE_READ_INTO(&b.addr, sk, __sk_common.skc_v6_daddr);
		sockaddr_conn(&b, sizeof(b), &c);
	}
	if (w->mode != MODE_OBSERVE) {
		/* The peer of a connection accepted on this port. */
		struct conn in = c;
		in.dir = DIR_INGRESS;
		__builtin_memcpy(in.saddr, c.daddr, 16);
		in.dport = BPF_CORE_READ(sk, __sk_common.skc_num);
		if (rules_allow(&in, w->gen << 1 | DIR_INGRESS, node, 0))
			return 0;
	}
	return check_conn(&c, w, cgid, node, true) ? 0 : -EPERM;
}

SEC("lsm/socket_connect")
int BPF_PROG(check_socket_connect, struct socket *sock, void *address, int addrlen, int ret)
{
	return ret ? ret : check_passed(sock, address, addrlen, NULL);
}

SEC("lsm/socket_sendmsg")
int BPF_PROG(check_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	return ret ? ret : check_passed(sock, NULL, 0, msg);
}
