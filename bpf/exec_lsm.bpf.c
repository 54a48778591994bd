//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The lsm backend's exec check, for kernels with BPF LSM active: a
 * disallowed exec fails with EPERM before the new image is loaded.
 *
 * The hook is bprm_creds_from_file, not bprm_check_security: it runs once
 * per exec, in begin_new_exec, on the file finally mapped (for a script, its
 * interpreter, as in the tracing backend), after the new credentials are
 * computed and before the point of no return. bprm_check_security runs
 * earlier, before setuid/setgid and file capabilities are applied, so it
 * would check the caller's euid: a setuid-root binary run by nobody would
 * pass an `euser: [nobody]` node and then run as root. The name checked is
 * the last element of the path the caller passed, which becomes comm.
 *
 * The task's new node is recorded here, just before the point of no return;
 * an exec that still fails (an LSM after bpf in lsm= denies it) leaves the
 * task running its old image at the new node.
 */
#include "include/sysexit.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct base_ctx {
	__u32 start;
};

/* slash_step records where the element after byte i starts if byte i is a
 * '/' (a bpf_loop callback: one verification instead of one per byte). */
static long slash_step(__u32 i, void *data)
{
	struct base_ctx *b = data;
	struct scratch *s = get_scratch();
	if (!s)
		return 1;
	char c = s->fname[i & (PATH_LEN - 1)];
	if (!c)
		return 1;
	if (c == '/')
		b->start = i + 1;
	return 0;
}

/* basename_to_name copies the last element of s->fname (at most 15 bytes,
 * as the kernel names comm) to s->name. */
static __always_inline void basename_to_name(struct scratch *s)
{
	struct base_ctx b = {};
	bpf_loop(PATH_LEN, slash_step, &b, 0);
	bpf_probe_read_kernel_str(s->name, sizeof(s->name), &s->fname[b.start & (PATH_LEN - 1)]);
}

SEC("lsm/bprm_creds_from_file")
int check_bprm(__u64 *ctx)
{
	struct linux_binprm *bprm = (void *)ctx[0];
	int ret = (int)ctx[2];
	if (ret)
		return ret;
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 0;
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!s)
		return 0;
	const char *filename = BPF_CORE_READ(bprm, filename);
	bpf_probe_read_kernel_str(s->fname, sizeof(s->fname), filename);
	basename_to_name(s);
	struct task_struct *task = bpf_get_current_task_btf();
	struct file *file = BPF_CORE_READ(bprm, file);
	/* bprm->cred now holds the credentials the new image will run with. */
	__u32 uid = BPF_CORE_READ(bprm, cred, uid.val);
	__u32 euid = BPF_CORE_READ(bprm, cred, euid.val);
	if (check_exec(s, w, cgid, task, file, uid, euid) == VERDICT_BLOCK)
		return -EPERM;
	return 0;
}

/* A setuid, setreuid, setresuid or setfsuid about to commit credentials
 * new: an effective uid change needs a child node (cred.h), else it fails
 * with EPERM in enforce. The task's new node is recorded here; sys_exit
 * then finds the euid recorded. */
SEC("lsm/task_fix_setuid")
int check_setuid(__u64 *ctx)
{
	struct cred *new = (void *)ctx[0];
	int ret = (int)ctx[3];
	if (ret)
		return ret;
	struct task_struct *task = bpf_get_current_task_btf();
	struct task_state *own = bpf_task_storage_get(&task_states, task, 0, 0);
	if (!own)
		return 0;
	__u32 euid = BPF_CORE_READ(new, euid.val);
	if (euid == own->euid)
		return 0;
	return check_cred(task, own, euid) == VERDICT_BLOCK ? -EPERM : 0;
}
