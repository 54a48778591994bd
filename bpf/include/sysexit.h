/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The syscall-exit program both backends attach (tp_btf/sys_exit): it runs
 * after every syscall of every task of the host, so it returns at once for
 * a task without state (one that never was in a workload). For the others:
 *
 * - Credentials (cred.h): the task's cred pointer is compared with the one
 *   its state recorded, whatever the syscall (native, ia32 int 0x80,
 *   anything that commits credentials); a changed euid is a cred change.
 *   The lsm backend decides the setuid family earlier, at task_fix_setuid,
 *   and records the new euid there, so here it only sees what that hook
 *   does not cover.
 * - Listen (TCP): the node that called listen() is reported as listening
 *   on the socket's port (also one the kernel chose, with no bind).
 * - Accept (TCP): ingress belongs to the process that accepted. After
 *   accept, accept4 (and ia32 socketcall accept/accept4, accept4) returned
 *   a descriptor, its socket gives the peer and the local port, which are
 *   checked for the acceptor's node; a connection no rule gives that node
 *   is reported with it and, in enforce, the acceptor is killed before
 *   accept returns (it never reads the connection). The per-cgroup ingress
 *   program keeps dropping connection requests that no node of the
 *   workload may receive. io_uring accepts have no syscall exit of their
 *   own: uring.bpf.c decides them at completion for the node that
 *   submitted them, with the same check (sockfile.h).
 */
#ifndef __BULWARK_SYSEXIT_H__
#define __BULWARK_SYSEXIT_H__

#include "cred.h"
#include "sockfile.h"

struct pt_regs {
	unsigned long bx;
	unsigned long cx;
	unsigned long di;
	unsigned long orig_ax;
} __attribute__((preserve_access_index));

#define NR_ACCEPT 43
#define NR_ACCEPT4 288
#define NR32_SOCKETCALL 102
#define NR32_ACCEPT4 364
#define NR_LISTEN 50
#define NR32_LISTEN 363
#define SYS_ACCEPT 5
#define SYS_LISTEN 4
#define SYS_ACCEPT4 18
#define X32_SYSCALL_BIT 0x40000000
#define TS_COMPAT 0x0002

/* accept_call reports whether the syscall regs ended is an accept. The
 * task and regs are the kernel's (BTF pointers): plain loads, no helper
 * calls, since this runs on every syscall of a workload. */
static __always_inline bool accept_call(struct task_struct *task, struct pt_regs *regs)
{
	long nr = regs->orig_ax;
	if (nr == NR32_ACCEPT4 || nr == NR32_SOCKETCALL) {
		if (!(task->thread_info.status & TS_COMPAT))
			return false;
		return nr == NR32_ACCEPT4 || regs->bx == SYS_ACCEPT || regs->bx == SYS_ACCEPT4;
	}
	nr &= ~(long)X32_SYSCALL_BIT;
	return (nr == NR_ACCEPT || nr == NR_ACCEPT4) && !(task->thread_info.status & TS_COMPAT);
}

/* listen_fd returns the descriptor a successful listen (ret 0) of the
 * syscall regs ended was given, or -1 when it was no listen. */
static __always_inline long listen_fd(struct task_struct *task, struct pt_regs *regs, long ret)
{
	long nr = regs->orig_ax;
	if (ret)
		return -1;
	if (nr == NR32_LISTEN || nr == NR32_SOCKETCALL) {
		if (!(task->thread_info.status & TS_COMPAT))
			return -1;
		if (nr == NR32_LISTEN)
			return (__u32)regs->bx;
		__u32 fd;
		if (regs->bx != SYS_LISTEN || bpf_probe_read_user(&fd, sizeof(fd), (void *)regs->cx))
			return -1;
		return fd;
	}
	nr &= ~(long)X32_SYSCALL_BIT;
	if (nr != NR_LISTEN || (task->thread_info.status & TS_COMPAT))
		return -1;
	return (int)regs->di;
}

/* check_accept decides the TCP connection the current task just accepted
 * as descriptor fd, for its own node: 1 to let it run, 0 to stop it. */
static __always_inline int check_accept(struct task_struct *task, long fd)
{
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 1;
	struct conn c = { .dir = DIR_INGRESS };
	if (fd_conn(task, fd, &c))
		return 1;
	return check_conn(&c, w, cgid, current_node(), true);
}

/* note_listen reports that the current task's node listens on the TCP
 * socket of descriptor fd. */
static __always_inline void note_listen(struct task_struct *task, long fd)
{
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	struct conn c = {};
	if (w && !fd_conn(task, fd, &c))
		report_listen(&c, w, cgid, current_node());
}

SEC("tp_btf/sys_exit")
int on_sys_exit(__u64 *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct task_state *own = bpf_task_storage_get(&task_states, task, 0, 0);
	if (!own)
		return 0;
	const struct cred *cr = task->cred;
	__u64 cred = (__u64)cr;
	if (cred != own->cred) {
		own->cred = cred;
		__u32 euid = BPF_CORE_READ(cr, euid.val);
		if (euid != own->euid && check_cred(task, own, euid) == VERDICT_BLOCK) {
			bpf_send_signal(SIGKILL);
			return 0;
		}
	}
	long ret = (long)ctx[1];
	struct pt_regs *regs = (struct pt_regs *)ctx[0];
	if (ret < 0)
		return 0;
	if (accept_call(task, regs)) {
		if (!check_accept(task, ret))
			bpf_send_signal(SIGKILL);
		return 0;
	}
	long lfd = listen_fd(task, regs, ret);
	if (lfd >= 0)
		note_listen(task, lfd);
	return 0;
}

#endif /* __BULWARK_SYSEXIT_H__ */
