//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tracing backend's exec check, for kernels without BPF LSM: after the
 * new image is loaded (sched_process_exec) a disallowed exec is killed with
 * SIGKILL before it runs its first instruction. The caller sees status 137,
 * not EPERM.
 */
#include "include/sysexit.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/sched_process_exec")
int on_exec(__u64 *ctx)
{
	struct task_struct *task = (void *)ctx[0];
	struct linux_binprm *bprm = (void *)ctx[2];
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 0;
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!s)
		return 0;
	/* comm is already the new image's name here. */
	bpf_get_current_comm(s->name, sizeof(s->name));
	struct file *file = BPF_CORE_READ(bprm, file);
	__u32 uid = BPF_CORE_READ(task, cred, uid.val);
	__u32 euid = BPF_CORE_READ(task, cred, euid.val);
	if (check_exec(s, w, cgid, task, file, uid, euid) == VERDICT_BLOCK)
		bpf_send_signal(SIGKILL);
	return 0;
}
