//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * UDP ingress belongs to the process that receives the datagram, as TCP
 * ingress belongs to the one that accepts (sysexit.h). cgroup_skb/ingress
 * (network.bpf.c) runs in softirq, without the receiver, and drops only
 * what no node of the workload may receive; here the datagram a task
 * reads is decided for that task's node. A datagram from the socket's
 * connected peer or from a peer it sent to is a reply and passes. One
 * that no rule gives the receiver's node is reported with that node and,
 * in enforce, the receiver is killed (SIGKILL) before the receive returns
 * to user space: it never runs an instruction with the data. Killing is
 * the only stop at hand: the hooks run after the datagram left the queue
 * and cannot change what the receive returns (fexit), and the check
 * before a receive (lsm/socket_recvmsg) runs before there is a datagram
 * to decide (a blocking read waits inside the receive).
 *
 * - lsm backend: fexit/__skb_recv_udp, in the receiver, with the datagram
 *   (its IP and UDP headers give the source) before it is copied out;
 *   every read of a UDP socket passes there, MSG_PEEK included. So does
 *   a sockmap's read of a UDP socket, which can run in softirq on top of
 *   an unrelated task, whose node it is then decided for: not handled
 *   (a workload cannot make sockmaps without CAP_BPF or CAP_NET_ADMIN,
 *   which the threat model keeps from it; a host program could).
 * - tracing backend (no trampolines): tp_btf/sock_recv_length (Linux 6.3
 *   and later) fires in the receiver after each read with the socket but
 *   no datagram; the source comes from cgroup/recvmsg4 and recvmsg6,
 *   attached to each workload cgroup, which see it when the reader asks
 *   for it (msg_name: recvfrom, recvmsg, recvmmsg with an address) and
 *   leave it in udp_sources for the same read. A read that asks for no
 *   address (read, recv) cannot be decided here: it marks the socket
 *   (SI_NO_SOURCE), whose later datagrams ingress decides for the node
 *   bound to the port, as before (the first one only against the union
 *   of the workload's nodes).
 *
 * Where neither can load, the engine leaves udp_at_receive unset and
 * ingress decides a datagram for the node bound to its port.
 */
#include "include/udpsock.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SIGKILL 9

struct sk_buff {
	unsigned char *head;
	__u16 transport_header;
	__u16 network_header;
} __attribute__((preserve_access_index));

/* The source of the datagram a thread's read is taking, left by recvmsg4
 * or recvmsg6 for sock_recv_length, with the reading thread and the
 * socket. One per CPU: the two run in the same read, moments apart; a
 * read preempted in between finds another's entry, which counts as no
 * source (see on_sock_recv_length), never as another datagram's. */
struct udp_source {
	__u64 pid_tgid;
	__u64 cookie; /* 0: used */
	struct peer from;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct udp_source);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} udp_sources SEC(".maps");

/* check_recv decides the datagram from c's source (family, saddr, sport)
 * that UDP socket sk gave the current task, for the task's node: 1 to let
 * the task run on, 0 to stop it. */
static __always_inline int check_recv(struct sock *sk, struct conn *c)
{
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 1;
	/* A connected socket hears only its peer, which its connect checked. */
	if (sk->__sk_common.skc_state == UDP_CONNECTED)
		return 1;
	c->dir = DIR_INGRESS;
	c->proto = IPPROTO_UDP;
	struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, 0);
	if (si && known_peer(si, c))
		return 1;
	c->dport = sk->__sk_common.skc_num;
	return check_conn(c, w, cgid, current_node(), true);
}

/* skb_source fills c's family, source address and port from the headers
 * of a received UDP datagram; -1 when they cannot be read. */
static __always_inline int skb_source(struct sk_buff *skb, struct conn *c)
{
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header), th = BPF_CORE_READ(skb, transport_header);
	__u8 ip[24];
	__be16 sport;
	if (bpf_probe_read_kernel(ip, sizeof(ip), head + nh) ||
	    bpf_probe_read_kernel(&sport, sizeof(sport), head + th))
		return -1;
	c->sport = bpf_ntohs(sport);
	if (ip[0] >> 4 == 4) {
		c->family = AF_INET;
		__builtin_memcpy(c->saddr, &ip[12], 4);
		return 0;
	}
	if (ip[0] >> 4 != 6)
		return -1;
	c->family = AF_INET6;
	__builtin_memcpy(c->saddr, &ip[8], 16);
	if (unmap_v4(c->saddr))
		c->family = AF_INET;
	return 0;
}

SEC("fexit/__skb_recv_udp")
int BPF_PROG(on_skb_recv_udp, struct sock *sk, unsigned int flags, int *off, int *err,
	     struct sk_buff *skb)
{
	struct conn c = {};
	if (!skb || skb_source(skb, &c))
		return 0;
	if (!check_recv(sk, &c))
		bpf_send_signal(SIGKILL);
	return 0;
}

/* note_source leaves the source of the datagram the current thread is
 * reading (c: from a recvmsg sock_addr context) for sock_recv_length. */
static __always_inline int note_source(struct bpf_sock_addr *ctx, struct conn *c)
{
	__u32 zero = 0;
	struct udp_source *s = bpf_map_lookup_elem(&udp_sources, &zero);
	if (!s || c->proto != IPPROTO_UDP)
		return 1;
	s->pid_tgid = bpf_get_current_pid_tgid();
	s->cookie = bpf_get_socket_cookie(ctx);
	s->from.port = c->dport;
	s->from.family = c->family;
	__builtin_memcpy(s->from.addr, c->daddr, 16);
	return 1;
}

SEC("cgroup/recvmsg4")
int recvmsg4(struct bpf_sock_addr *ctx)
{
	struct conn c = {};
	sock_addr4(ctx, &c);
	return note_source(ctx, &c);
}

SEC("cgroup/recvmsg6")
int recvmsg6(struct bpf_sock_addr *ctx)
{
	struct conn c = {};
	sock_addr6(ctx, &c);
	return note_source(ctx, &c);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(on_sock_recv_length, struct sock *sk, int ret, int flags)
{
	/* Every read of every socket of the host comes here: plain loads
	 * of the kernel's socket (a BTF pointer), no helper calls. */
	if (sk->sk_protocol != IPPROTO_UDP)
		return 0;
	__u32 zero = 0;
	struct udp_source *s = bpf_map_lookup_elem(&udp_sources, &zero);
	if (!s)
		return 0;
	if (!s->cookie || s->pid_tgid != bpf_get_current_pid_tgid() ||
	    s->cookie != bpf_get_socket_cookie(sk)) {
		/* A read that asked for no source (or of a socket from
		 * outside the workload, or preempted after recvmsg): from
		 * now on ingress decides this socket's datagrams. Only
		 * workload sockets have storage. */
		if (ret < 0 || sk->__sk_common.skc_state == UDP_CONNECTED)
			return 0;
		struct sock_info *si = bpf_sk_storage_get(&sock_infos, sk, 0, 0);
		if (si && !(si->flags & SI_NO_SOURCE))
			si->flags |= SI_NO_SOURCE;
		return 0;
	}
	/* Used once. */
	struct udp_source src = *s;
	s->cookie = 0;
	if (ret < 0)
		return 0;
	struct conn c = { .family = src.from.family, .sport = src.from.port };
	__builtin_memcpy(c.saddr, src.from.addr, 16);
	if (!check_recv(sk, &c))
		bpf_send_signal(SIGKILL);
	return 0;
}
