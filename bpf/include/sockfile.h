/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * From an accepted socket's file to the connection the network check
 * decides: used at syscall exit (sysexit.h, accept/accept4) and at io_uring
 * completion (uring.bpf.c, IORING_OP_ACCEPT), so both decide the same way.
 */
#ifndef __BULWARK_SOCKFILE_H__
#define __BULWARK_SOCKFILE_H__

#include "netcheck.h"

/* fd_file returns the file of task's descriptor fd, read from its
 * descriptor table, or NULL. */
static __always_inline struct file *fd_file(struct task_struct *task, long fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (fd < 0 || !fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]))
		return NULL;
	return file;
}

/* file_conn fills c (family, TCP, the peer in saddr and sport, the local
 * end in daddr and dport) from the TCP socket of file; -1 when file is no
 * TCP socket. The caller knows file is a socket's (private_data is then
 * its struct socket). */
static __always_inline int file_conn(struct file *file, struct conn *c)
{
	if (!file)
		return -1;
	struct socket *sock = (struct socket *)BPF_CORE_READ(file, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return -1;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if ((family != AF_INET && family != AF_INET6) || BPF_CORE_READ(sk, sk_type) != SOCK_STREAM ||
	    !nameable(SOCK_STREAM, BPF_CORE_READ(sk, sk_protocol)))
		return -1;
	c->proto = IPPROTO_TCP;
	c->family = family;
	c->sport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	c->dport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (family == AF_INET) {
		__be32 a = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__be32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__builtin_memcpy(c->saddr, &a, 4);
		__builtin_memcpy(c->daddr, &l, 4);
		return 0;
	}
	BPF_CORE_READ_INTO(&c->saddr, sk, __sk_common.skc_v6_daddr);
	BPF_CORE_READ_INTO(&c->daddr, sk, __sk_common.skc_v6_rcv_saddr);
	if (!*(__u64 *)c->daddr && *(__u32 *)&c->daddr[8] == bpf_htonl(0x0000ffff)) {
		/* A v4-mapped connection: checked against the IPv4 rules. */
		c->family = AF_INET;
		__builtin_memmove(c->saddr, &c->saddr[12], 4);
		__builtin_memset(&c->saddr[4], 0, 12);
		__builtin_memmove(c->daddr, &c->daddr[12], 4);
		__builtin_memset(&c->daddr[4], 0, 12);
	}
	return 0;
}

/* fd_conn fills c from the TCP socket of task's descriptor fd (as
 * file_conn); -1 when fd is no TCP socket. */
static __always_inline int fd_conn(struct task_struct *task, long fd, struct conn *c)
{
	return file_conn(fd_file(task, fd), c);
}

#endif /* __BULWARK_SOCKFILE_H__ */
