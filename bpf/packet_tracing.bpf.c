//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tracing backend's checks that need a recent kernel, loaded where it
 * accepts them (else the engine warns and runs without): the egress stop
 * for raw sockets passed in from outside (egress_passed_in, below), and the
 * stop for packet sockets (AF_PACKET, AF_XDP), which no cgroup program sees: creating one needs CAP_NET_RAW, and the check of
 * that capability (tp_btf/cap_capable, kernel 6.14 and later) runs in the
 * creating task before the socket exists. A workload task that passes the
 * check inside socket(2) with such a family, or inside io_uring (whose
 * requests this cannot read), is killed with SIGKILL in enforce mode and
 * reported in audit. Other uses of CAP_NET_RAW (SO_MARK, IP_TRANSPARENT,
 * raw AF_INET sockets, which cgroup/sock_create refuses) are left alone.
 *
 * Cheaper than a sys_exit program, which puts every syscall of every task
 * on the tracepoint slow path: this runs on capability checks only. The
 * syscall is read from the task's saved registers, so x86-64 only (and its
 * ia32 entry: socket 359, socketcall 102).
 */
#include "include/netcheck.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SIGKILL 9
#define CAP_NET_RAW 13
#define NR_SOCKET 41
#define NR_IO_URING_ENTER 426
#define NR32_SOCKETCALL 102
#define NR32_SOCKET 359
#define SYS_SOCKET 1
#define PF_IO_WORKER 0x10

struct pt_regs {
	unsigned long bx;
	unsigned long cx;
	unsigned long di;
	unsigned long orig_ax;
} __attribute__((preserve_access_index));

struct task_struct___flags {
	unsigned int flags;
} __attribute__((preserve_access_index));

/* packet_family returns the family of the socket the task is creating when
 * it is not one cgroup/sock_create decides (AF_INET, AF_INET6), 0 when the
 * task is doing something else, and AF_PACKET when it cannot tell. */
static __always_inline __u32 packet_family(struct task_struct *task)
{
	struct task_struct___flags *t = (void *)task;
	if (BPF_CORE_READ(t, flags) & PF_IO_WORKER)
		return AF_PACKET;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	__u64 nr = BPF_CORE_READ(regs, orig_ax);
	__u32 family;
	switch (nr) {
	case NR_SOCKET:
		family = BPF_CORE_READ(regs, di);
		break;
	case NR32_SOCKET:
		family = BPF_CORE_READ(regs, bx);
		break;
	case NR32_SOCKETCALL:
		if (BPF_CORE_READ(regs, bx) != SYS_SOCKET)
			return 0;
		if (bpf_probe_read_user(&family, sizeof(family), (void *)BPF_CORE_READ(regs, cx)))
			return AF_PACKET;
		break;
	case NR_IO_URING_ENTER:
		return AF_PACKET;
	default:
		return 0;
	}
	return family == AF_INET || family == AF_INET6 ? 0 : family;
}

SEC("tp_btf/cap_capable")
int BPF_PROG(on_cap_capable, const void *cred, void *target_ns, const void *capable_ns, int cap, int ret)
{
	if (cap != CAP_NET_RAW || ret)
		return 0;
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 0;
	__u32 family = packet_family(bpf_get_current_task_btf());
	if (!family)
		return 0;
	struct conn c = { .family = family, .dir = DIR_EGRESS, .unnamed = 1 };
	if (!check_conn(&c, w, cgid, current_node(), true))
		bpf_send_signal(SIGKILL);
	return 0;
}

/* egress_passed_in drops, in enforce mode, what a workload's task sends
 * over a user socket of a protocol the policy cannot name that belongs to
 * no workload: one made outside and passed in (SCM_RIGHTS, inherited).
 * Attached to the root cgroup; a workload's own socket is left to its
 * cgroup's egress program. It needs the sending task, which cgroup_skb
 * programs may ask for only on recent kernels (6.18 here, not 6.12). */
SEC("cgroup_skb/egress")
int egress_passed_in(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb_sock(skb);
	if (!sk || nameable(sk->type, sk->protocol))
		return 1;
	if (!bpf_sk_storage_get(&user_socks, sk, 0, 0))
		return 1;
	__u64 cgid = 0;
	if (skb_workload(skb, &cgid))
		return 1;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 1;
	return check_unnamed_send(skb, sk, w, cgid, current_node(), true);
}
