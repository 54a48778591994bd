/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Credential changes, shared by both backends. A process node is a name,
 * an exe and an effective user: a task whose euid changes (setuid,
 * setreuid, setresuid, native or ia32, or anything else that commits new
 * credentials) without an exec moves to a child of the node it was in
 * that matches its current name and exe and the new euid, whether it
 * forked first (a pre-forking server's workers) or not (a daemon dropping
 * privileges). The rule is strict: the node's own euser list never allows
 * a change, only a child node does, so a learned policy allows exactly the
 * transitions that ran. No matching child is a deviation (EVENT_CRED);
 * in enforce the lsm backend denies it at task_fix_setuid (EPERM) and the
 * tracing backend kills the task at sys_exit, before it runs on as the
 * new user. Observe mode gives the task a synthetic child node, reported
 * so that fingerprints get the child.
 *
 * Threads: credentials are per thread. Each thread's state records the
 * credentials it last saw (cred, euid); a thread that follows its
 * process's change (glibc applies setuid to every thread) takes the node
 * its process already moved to.
 */
#ifndef __BULWARK_CRED_H__
#define __BULWARK_CRED_H__

#include "exec.h"

/* load_identity writes the name and exe of task state ts to s, as
 * resolve_exe and name_len do for an exec, and returns the exe identity
 * (EV_TRUNCATED when the state says its exe matched no node). */
static __always_inline struct exe_id load_identity(struct scratch *s, struct task_state *ts,
						   __u32 *nlen)
{
	struct exe_id id = { .cls = ts->exe_cls };
	long n = bpf_probe_read_kernel_str(s->path, PATH_LEN, ts->exe);
	__u32 off = n > 0 ? n - 1 : 0;
	off &= PATH_LEN - 1;
	bpf_probe_read_kernel(&s->rpath[(PATH_LEN - off) & (PATH_LEN - 1)], off, s->path);
	id.len = off;
	/* An exe that matched nothing, or none recorded: no node matches. */
	if (ts->flags & (TS_TRUNCATED | TS_NO_EXEC))
		id.flags = EV_TRUNCATED;
	bpf_probe_read_kernel(s->name, NAME_LEN, ts->name);
	s->name[NAME_LEN - 1] = 0;
	*nlen = name_len(s);
	return id;
}

/* cred_node is the synthetic node of a cred change to euid from parent
 * that no policy node allows (or observed): a child of parent, apart from
 * the synthetic nodes of execs. */
static __always_inline __u64 cred_node(__u64 parent, __u32 euid)
{
	__u64 node = parent * FNV_PRIME ^ (0xc4edULL << 32 | EVENT_CRED);
	return (node * FNV_PRIME ^ euid) | NODE_SYNTHETIC;
}

/* check_cred decides the change of the current task (own: its own state)
 * to effective uid euid, records the task's new node and reports it; it
 * returns the verdict the backend must enforce. A blocked change leaves
 * the state as it was. */
static __always_inline int check_cred(struct task_struct *task, struct task_state *own,
				      __u32 euid)
{
	struct task_state *ts = task_state_of(task);
	if (!ts || euid == ts->euid) {
		/* This thread follows its process, which changed already
		 * (or the recorded euid is the thread's own). */
		if (ts && ts != own) {
			own->node = ts->node;
			own->cgid = ts->cgid;
		}
		own->euid = euid;
		return VERDICT_ALLOW;
	}
	__u64 cgid = ts->cgid;
	struct workload *w = bpf_map_lookup_elem(&workloads, &cgid);
	if (!w || !cgid) {
		own->euid = euid;
		return VERDICT_ALLOW;
	}
	struct scratch *s = get_scratch();
	if (!s)
		return w->mode == MODE_ENFORCE ? VERDICT_BLOCK : VERDICT_ALLOW;
	__u32 gen = w->gen, mode = w->mode, wflags = w->flags;
	__u64 parent = ts->node;
	__u32 old_euid = ts->euid;
	__u32 uid = BPF_CORE_READ(task, cred, uid.val);
	__u32 nlen = 0;
	struct exe_id id = load_identity(s, ts, &nlen);
	__u64 node = 0;
	__u32 flags = 0;
	if (mode != MODE_OBSERVE && !id.flags)
		node = match_child(gen, parent, &id, nlen, euid);
	if (!node) {
		node = cred_node(parent, euid);
		if (mode != MODE_OBSERVE && !(wflags & WL_NO_PROCESS)) {
			flags = EV_DEVIATION;
			if (mode == MODE_ENFORCE)
				flags |= EV_BLOCKED;
		}
	}
	if (mode == MODE_ENFORCE && (ts->flags & TS_ESCAPED))
		flags |= EV_DEVIATION | EV_BLOCKED;
	if (flags & EV_DEVIATION) {
		emit_process(s, task, cgid, EVENT_CRED, node, parent, flags, uid, old_euid, euid);
	} else {
		struct seen_key k = {
			.cgid = cgid,
			.a = parent,
			.b = node,
			.kind_gen = EVENT_CRED << 24 | (gen & 0xffffff),
			.d = euid,
		};
		if (first_seen(&k))
			emit_process(s, task, cgid, EVENT_CRED, node, parent, flags, uid, old_euid, euid);
	}
	if (flags & EV_BLOCKED)
		return VERDICT_BLOCK;
	/* Re-read: the scratch and event work above may not keep the
	 * verifier's view of own. */
	own = bpf_task_storage_get(&task_states, task, 0, 0);
	if (!own)
		return VERDICT_ALLOW;
	if (own != ts) {
		/* Name and exe of the process. */
		bpf_probe_read_kernel(own->name, NAME_LEN, s->name);
		bpf_probe_read_kernel(own->exe, PATH_LEN, s->path);
		own->exe_cls = id.cls;
		own->flags = (own->flags & TS_ESCAPED) | (id.flags ? TS_TRUNCATED : 0);
	}
	own->node = node;
	own->cgid = cgid;
	own->euid = euid;
	own->stamp = bpf_ktime_get_ns();
	record_net_task(bpf_get_current_pid_tgid() >> 32, own);
	return VERDICT_ALLOW;
}

#endif /* __BULWARK_CRED_H__ */
