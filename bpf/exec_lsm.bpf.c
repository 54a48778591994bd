//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The lsm backend's exec check, for kernels with BPF LSM active: a
 * disallowed exec fails with EPERM before the new image is loaded.
 *
 * bprm_check_security runs once per binary handler level: for a script
 * first with the script itself, then with its interpreter. The script level
 * (bprm->buf starts with "#!") is let through so that, like the tracing
 * backend, the decision is made on the file finally mapped (the
 * interpreter), named after the path the caller passed.
 *
 * The task's new node is recorded here, before the point of no return; an
 * exec that fails later (rare: out of memory, a bad ELF) leaves the task
 * running its old image at the new node.
 */
#include "include/exec.h"

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

SEC("lsm/bprm_check_security")
int check_bprm(__u64 *ctx)
{
	struct linux_binprm *bprm = (void *)ctx[0];
	int ret = (int)ctx[1];
	if (ret)
		return ret;
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return 0;
	char magic[2] = {};
	bpf_core_read(magic, sizeof(magic), &bprm->buf);
	if (magic[0] == '#' && magic[1] == '!')
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
	__u32 uid = BPF_CORE_READ(bprm, cred, uid.val);
	__u32 euid = BPF_CORE_READ(bprm, cred, euid.val);
	if (check_exec(s, w, cgid, task, file, uid, euid) == VERDICT_BLOCK)
		return -EPERM;
	return 0;
}
