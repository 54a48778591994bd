/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The exec decision shared by both backends, and the process-tree
 * bookkeeping (fork, exit) they both need.
 *
 * What is checked: the executable is the file the kernel maps, bprm->file,
 * resolved to a path as the workload sees it (a dentry walk up to the task's
 * root, crossing mounts, at most MAX_DEPTH components and PATH_LEN bytes).
 * That is /proc/PID/exe: for a script it is the interpreter, for a busybox
 * applet it is /bin/busybox. The name is the task's comm (15 characters),
 * which the kernel takes from the last element of the path the caller
 * passed, so a script keeps its own name. The user is the effective uid of
 * the new credentials.
 *
 * Strings are compared by FNV-1a hashes of their prefixes and suffixes, so a
 * pattern costs the same whatever its length: an exact string tests the
 * hash of the whole string, a glob `pre*suf` the hash of the first len(pre)
 * and of the last len(suf) bytes (the suffix hashed from the end).
 */
#ifndef __BULWARK_EXEC_H__
#define __BULWARK_EXEC_H__

#include "bulwark.h"

#define SIGKILL 9
#define EPERM 1

/* Per-CPU working memory of one exec decision. */
struct scratch {
	char path[PATH_LEN * 2];
	char name[NAME_LEN];
	char fname[PATH_LEN];
	/* Sized to a power of two so indexes can be masked, which the
	 * verifier follows whatever order the compiler emits the checks in. */
	__u64 ph[PATH_LEN * 2]; /* ph[i]: hash of path[0:i] */
	__u64 sh[PATH_LEN * 2]; /* sh[i]: hash of the last i bytes, from the end */
	__u64 nph[NAME_LEN * 2];
	__u64 nsh[NAME_LEN * 2];
	__u64 comp_name[MAX_DEPTH];
	__u32 comp_len[MAX_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} exec_scratch SEC(".maps");

/* Verdicts of check_exec. */
enum verdict {
	VERDICT_ALLOW = 0,
	VERDICT_BLOCK = 1,
};

static __always_inline struct scratch *get_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&exec_scratch, &zero);
}

/* State of the dentry walk; each bpf_loop step moves one level up. */
struct walk_ctx {
	__u64 mnt_off;
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	__u32 n;
	__u32 truncated;
};

static long walk_step(__u32 i, void *data)
{
	struct walk_ctx *w = data;
	struct scratch *s = get_scratch();
	if (!s)
		return 1;
	/* Copy the walk state to locals: BPF_CORE_READ on w->field would
	 * relocate walk_ctx itself against the kernel. */
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt;
	if (dentry == w->root_dentry && vfsmnt == w->root_mnt)
		return 1;
	struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == mnt_root || dentry == parent) {
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
		if (up == mnt)
			return 1; /* the global root */
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		w->vfsmnt = (void *)up + w->mnt_off;
		return 0;
	}
	if (w->n >= MAX_DEPTH) {
		w->truncated = 1;
		return 1;
	}
	__u32 n = w->n & (MAX_DEPTH - 1);
	s->comp_name[n] = (__u64)BPF_CORE_READ(dentry, d_name.name);
	s->comp_len[n] = BPF_CORE_READ(dentry, d_name.len);
	w->n++;
	w->dentry = parent;
	return 0;
}

struct join_ctx {
	__u32 n;
	__u32 off;
	__u32 truncated;
};

/* join_step appends component n-1-i to the path. */
static long join_step(__u32 i, void *data)
{
	struct join_ctx *j = data;
	struct scratch *s = get_scratch();
	if (!s || i >= j->n)
		return 1;
	__u32 c = (j->n - 1 - i) & (MAX_DEPTH - 1);
	__u32 l = s->comp_len[c];
	__u32 off = j->off;
	if (off + 1 + l >= PATH_LEN) {
		j->truncated = 1;
		return 1;
	}
	s->path[off & (PATH_LEN - 1)] = '/';
	off++;
	bpf_probe_read_kernel(&s->path[off & (PATH_LEN - 1)], l & (PATH_LEN - 1),
			      (const void *)s->comp_name[c]);
	j->off = off + l;
	return 0;
}

/* resolve_path writes file's path, as seen from task's root, to s->path and
 * returns its length; *truncated is set when it did not fit. */
static __always_inline __u32 resolve_path(struct scratch *s, struct file *file,
					   struct task_struct *task, __u32 *truncated)
{
	struct walk_ctx w = {
		.mnt_off = bpf_core_field_offset(struct mount, mnt),
		.dentry = BPF_CORE_READ(file, f_path.dentry),
		.vfsmnt = BPF_CORE_READ(file, f_path.mnt),
		.root_dentry = BPF_CORE_READ(task, fs, root.dentry),
		.root_mnt = BPF_CORE_READ(task, fs, root.mnt),
	};
	w.mnt = (void *)w.vfsmnt - w.mnt_off;
	bpf_loop(MAX_DEPTH + 8, walk_step, &w, 0);
	struct join_ctx j = { .n = w.n };
	bpf_loop(MAX_DEPTH, join_step, &j, 0);
	*truncated = w.truncated | j.truncated;
	__u32 off = j.off;
	if (off == 0) {
		s->path[0] = '/';
		off = 1;
	}
	off &= PATH_LEN - 1;
	s->path[off] = 0;
	return off;
}

struct hash_ctx {
	__u64 prefix;
	__u64 suffix;
	__u32 len;
	__u32 name; /* hash s->name instead of s->path */
};

/* hash_step extends the prefix and suffix hashes by byte i. */
static long hash_step(__u32 i, void *data)
{
	struct hash_ctx *h = data;
	struct scratch *s = get_scratch();
	if (!s || i >= h->len)
		return 1;
	__u32 r = h->len - 1 - i;
	if (h->name) {
		h->prefix = (h->prefix ^ (__u8)s->name[i & (NAME_LEN - 1)]) * FNV_PRIME;
		h->suffix = (h->suffix ^ (__u8)s->name[r & (NAME_LEN - 1)]) * FNV_PRIME;
		s->nph[(i + 1) & (NAME_LEN * 2 - 1)] = h->prefix;
		s->nsh[(i + 1) & (NAME_LEN * 2 - 1)] = h->suffix;
	} else {
		h->prefix = (h->prefix ^ (__u8)s->path[i & (PATH_LEN - 1)]) * FNV_PRIME;
		h->suffix = (h->suffix ^ (__u8)s->path[r & (PATH_LEN - 1)]) * FNV_PRIME;
		s->ph[(i + 1) & (PATH_LEN * 2 - 1)] = h->prefix;
		s->sh[(i + 1) & (PATH_LEN * 2 - 1)] = h->suffix;
	}
	return 0;
}

/* hash_path fills s->ph and s->sh for the first len bytes of s->path. */
static __always_inline void hash_path(struct scratch *s, __u32 len)
{
	struct hash_ctx h = { .prefix = FNV_OFFSET, .suffix = FNV_OFFSET, .len = len };
	s->ph[0] = FNV_OFFSET;
	s->sh[0] = FNV_OFFSET;
	bpf_loop(PATH_LEN, hash_step, &h, 0);
}

/* hash_name fills s->nph and s->nsh for s->name and returns its length. */
static __always_inline __u32 hash_name(struct scratch *s)
{
	__u32 len = 0;
	for (int i = 0; i < NAME_LEN - 1; i++) {
		if (!s->name[i])
			break;
		len++;
	}
	struct hash_ctx h = { .prefix = FNV_OFFSET, .suffix = FNV_OFFSET, .len = len, .name = 1 };
	s->nph[0] = FNV_OFFSET;
	s->nsh[0] = FNV_OFFSET;
	bpf_loop(NAME_LEN, hash_step, &h, 0);
	return len;
}

static __always_inline bool match_pattern(const struct pattern *p, const __u64 *ph,
					  const __u64 *sh, __u32 len, __u32 max, __u32 mask)
{
	__u32 pl = p->prefix_len, sl = p->suffix_len;
	if (pl > max || sl > max || len > max)
		return false;
	/* Keep the masks below: clang drops them as redundant after the
	 * bounds check, and the 6.1 verifier loses that bound when the value
	 * is spilled to the stack ("R1 max value is outside of the allowed
	 * memory range"). */
	barrier_var(pl);
	barrier_var(sl);
	barrier_var(len);
	switch (p->kind) {
	case PAT_ANY:
		return true;
	case PAT_EXACT:
		return pl == len && ph[len & mask] == p->prefix_hash;
	case PAT_GLOB:
		return pl + sl <= len && ph[pl & mask] == p->prefix_hash &&
		       sh[sl & mask] == p->suffix_hash;
	}
	return false;
}

struct exe_ctx {
	struct node *c;
	__u32 len;
	__u32 found;
};

/* exe_step tests exe pattern i of a node (a bpf_loop callback). */
static long exe_step(__u32 i, void *data)
{
	struct exe_ctx *x = data;
	struct node *c = x->c;
	struct scratch *s = get_scratch();
	if (!s || !c || i >= c->nexe)
		return 1;
	if (match_pattern(&c->exe[i & (MAX_EXE - 1)], s->ph, s->sh, x->len, PATH_LEN,
			  PATH_LEN * 2 - 1)) {
		x->found = 1;
		return 1;
	}
	return 0;
}

/* match_exe_and_uid tests node c's exe patterns and effective uids. */
static __always_inline bool match_exe_and_uid(struct node *c, __u32 len, __u32 euid)
{
	struct exe_ctx x = { .c = c, .len = len };
	bpf_loop(MAX_EXE, exe_step, &x, 0);
	if (!x.found)
		return false;
	__u32 nu = c->nuids;
	if (!nu)
		return true;
	for (__u32 j = 0; j < nu && j < MAX_UIDS; j++) {
		if (c->uids[j] == euid)
			return true;
	}
	return false;
}

struct match_ctx {
	__u64 parent;
	__u64 found;
	__u32 gen;
	__u32 len;
	__u32 nlen;
	__u32 euid;
};

/* match_one tests child i of ctx->parent (a bpf_loop callback, so the
 * verifier checks its body once, not once per child). */
static long match_one(__u32 i, void *data)
{
	struct match_ctx *m = data;
	struct node_key k = { .gen = m->gen, .node = m->parent };
	struct node *pn = bpf_map_lookup_elem(&policy_nodes, &k);
	if (!pn || i >= pn->nchildren)
		return 1;
	struct node_key ck = { .gen = m->gen, .node = pn->children[i & (MAX_CHILDREN - 1)] };
	struct node *c = bpf_map_lookup_elem(&policy_nodes, &ck);
	if (!c)
		return 0;
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&exec_scratch, &zero);
	if (!s)
		return 1;
	if (!match_pattern(&c->name, s->nph, s->nsh, m->nlen, NAME_LEN - 1, NAME_LEN * 2 - 1))
		return 0;
	if (!match_exe_and_uid(c, m->len, m->euid))
		return 0;
	m->found = ck.node;
	return 1;
}

/* match_child returns the id of the child of policy node parent that the
 * exec matches, or 0. */
static __always_inline __u64 match_child(__u32 gen, __u64 parent, __u32 len, __u32 nlen,
					 __u32 euid)
{
	struct match_ctx m = {
		.parent = parent, .gen = gen, .len = len, .nlen = nlen, .euid = euid,
	};
	bpf_loop(MAX_CHILDREN, match_one, &m, 0);
	return m.found;
}

static __always_inline void emit_exec(struct scratch *s, struct task_struct *task, __u64 cgid,
				      __u64 node, __u64 parent, __u32 flags, __u32 uid,
				      __u32 euid)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return;
	}
	e->time_ns = bpf_ktime_get_ns();
	e->cgid = cgid;
	e->node = node;
	e->parent_node = parent;
	e->kind = EVENT_EXEC;
	e->flags = flags;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = uid;
	e->euid = euid;
	e->family = 0;
	e->proto = 0;
	e->pad = 0;
	e->sport = 0;
	e->dport = 0;
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	bpf_probe_read_kernel(e->comm, sizeof(e->comm), s->name);
	bpf_probe_read_kernel(e->exe, sizeof(e->exe), s->path);
	bpf_ringbuf_submit(e, 0);
}

/* cgroup_within reports whether cgroup cg is the workload cgroup cgid (at
 * level) or below it. */
static __always_inline bool cgroup_within(struct cgroup *cg, __u64 cgid, __u32 level)
{
	if (!cg || level >= MAX_LEVEL || BPF_CORE_READ(cg, level) < (int)level)
		return false;
	struct cgroup *anc = NULL;
	bpf_probe_read_kernel(&anc, sizeof(anc),
			      (void *)cg + bpf_core_field_offset(struct cgroup, ancestors) +
				      level * sizeof(anc));
	return anc && BPF_CORE_READ(anc, kn, id) == cgid;
}

/* state_lost reports whether task, without state in workload cgid (at
 * level), was created inside it: its parent has state or is inside too. A
 * task entering from outside (runc init, docker exec, nsenter and a write
 * to cgroup.procs) has a parent outside. */
static __always_inline bool state_lost(struct task_struct *task, __u64 cgid, __u32 level)
{
	struct task_struct *parent = task->real_parent;
	if (!parent)
		return false;
	if (bpf_task_storage_get(&task_states, parent, 0, 0))
		return true;
	return cgroup_within(BPF_CORE_READ(parent, cgroups, dfl_cgrp), cgid, level);
}

/* record_net_task writes the node and workload of process tgid to
 * net_tasks; a failure (a full table) is counted. */
static __always_inline void record_net_task(__u32 tgid, struct task_state *ts)
{
	struct net_task nt = { .node = ts->node, .cgid = ts->cgid };
	if (bpf_map_update_elem(&net_tasks, &tgid, &nt, BPF_ANY))
		count_state_failure();
}

/* What check_exec learns from the task's state before deciding. It goes
 * through map memory, whose contents the verifier does not track, so the
 * paths through the state lookups merge again before the decision. */
struct exec_task {
	__u64 parent;  /* the task's node; NODE_UNKNOWN for a lost state */
	__u32 escaped; /* TS_ESCAPED or 0 */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct exec_task);
} exec_task SEC(".maps");

/* load_parent fills x for an exec by task in workload cgid (at level) and
 * makes sure the task has a state to record the exec in. A task without
 * state entered the workload from outside and may exec a root node (parent
 * 0); one created inside whose state is missing, or whose state cannot be
 * created, fails closed with NODE_UNKNOWN (counted). */
static __always_inline void load_parent(struct exec_task *x, struct task_struct *task,
					__u64 cgid, __u32 level)
{
	struct task_state *ts = task_state_of(task);
	x->parent = 0;
	x->escaped = 0;
	if (ts) {
		x->parent = ts->node;
		x->escaped = ts->flags & TS_ESCAPED;
	} else if (state_lost(task, cgid, level)) {
		count_state_failure();
		x->parent = NODE_UNKNOWN;
	}
	if (!bpf_task_storage_get(&task_states, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE)) {
		count_state_failure();
		x->parent = NODE_UNKNOWN;
	}
}

/* check_exec decides an exec by the current task (already in workload w of
 * cgroup cgid) of file, named s->name, with the given credentials, from
 * the node in its state (load_parent): it records the task's new node and
 * the exec in its state, reports the exec and returns the verdict the
 * backend must enforce. A task that left the workload's cgroup is denied
 * in enforce. */
static __always_inline int check_exec(struct scratch *s, struct workload *w, __u64 cgid,
				      struct task_struct *task, struct file *file, __u32 uid,
				      __u32 euid)
{
	__u32 gen = w->gen, mode = w->mode, wflags = w->flags;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 zero = 0;
	struct exec_task *x = bpf_map_lookup_elem(&exec_task, &zero);
	if (!x)
		return mode == MODE_ENFORCE ? VERDICT_BLOCK : VERDICT_ALLOW;
	load_parent(x, task, cgid, w->level);
	__u32 truncated = 0;
	__u32 len = resolve_path(s, file, task, &truncated);
	hash_path(s, len);
	__u32 nlen = hash_name(s);
	__u64 parent = x->parent;
	__u32 escaped = x->escaped;
	__u64 node = 0;
	__u32 flags = truncated ? EV_TRUNCATED : 0;

	/* NODE_UNKNOWN has no children: nothing matches under it. */
	if (mode != MODE_OBSERVE && !truncated)
		node = match_child(gen, parent, len, nlen, euid);
	if (!node) {
		/* Not a policy node: a synthetic node keeps its descendants
		 * apart (and never matches a policy node). */
		node = parent * FNV_PRIME ^ s->ph[len & (PATH_LEN * 2 - 1)];
		node = node * FNV_PRIME ^ s->nph[nlen & (NAME_LEN * 2 - 1)];
		node = (node * FNV_PRIME ^ euid) | NODE_SYNTHETIC;
		if (mode != MODE_OBSERVE && !(wflags & WL_NO_PROCESS)) {
			flags |= EV_DEVIATION;
			if (mode == MODE_ENFORCE)
				flags |= EV_BLOCKED;
		}
	}
	if (mode == MODE_ENFORCE)
		flags |= -(escaped / TS_ESCAPED) & (EV_DEVIATION | EV_BLOCKED);

	if (flags & EV_DEVIATION) {
		emit_exec(s, task, cgid, node, parent, flags, uid, euid);
	} else {
		struct seen_key k = {
			.cgid = cgid,
			.a = parent,
			.b = s->ph[len & (PATH_LEN * 2 - 1)],
			.c = s->nph[nlen & (NAME_LEN * 2 - 1)],
			.kind_gen = EVENT_EXEC << 24 | (gen & 0xffffff),
			.d = euid,
		};
		if (first_seen(&k))
			emit_exec(s, task, cgid, node, parent, flags, uid, euid);
	}
	struct task_state *own = bpf_task_storage_get(&task_states, task, 0, 0);
	if (flags & EV_BLOCKED) {
		/* The task keeps its image (lsm backend): a state created
		 * just now keeps its node (NODE_UNKNOWN when lost, never the
		 * roots' rights once the task was inside). */
		if (own && !own->cgid) {
			own->node = parent;
			own->cgid = cgid;
			own->stamp = bpf_ktime_get_ns();
			record_net_task(tgid, own);
		}
		return VERDICT_BLOCK;
	}
	if (!own)
		return VERDICT_ALLOW;
	own->node = node;
	own->cgid = cgid;
	own->stamp = bpf_ktime_get_ns();
	own->euid = euid;
	own->flags = escaped | (truncated ? TS_TRUNCATED : 0);
	__builtin_memcpy(own->name, s->name, NAME_LEN);
	bpf_probe_read_kernel(own->exe, PATH_LEN, s->path);
	record_net_task(tgid, own);
	return VERDICT_ALLOW;
}

/* Present from Linux 6.13; bpf_ksym_exists tells. */
extern int bpf_send_signal_task(struct task_struct *task, int sig, enum pid_type type,
				__u64 value) __ksym __weak;

#ifndef bpf_ksym_exists
#define bpf_ksym_exists(sym) (!!&(sym))
#endif

static __always_inline void emit_migrate(struct task_struct *task, struct task_state *ts,
					 __u32 flags)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->time_ns = bpf_ktime_get_ns();
	e->cgid = ts->cgid;
	e->node = ts->node;
	e->kind = EVENT_MIGRATE;
	e->flags = flags;
	e->pid = BPF_CORE_READ(task, tgid);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = BPF_CORE_READ(task, cred, uid.val);
	e->euid = BPF_CORE_READ(task, cred, euid.val);
	__builtin_memcpy(e->comm, ts->name, NAME_LEN);
	bpf_probe_read_kernel(e->exe, PATH_LEN, ts->exe);
	bpf_ringbuf_submit(e, 0);
}

/* check_move handles task, with state ts, arriving in cgroup dst (a write
 * to cgroup.procs, or a fork with CLONE_INTO_CGROUP, by the current task):
 * leaving the workload it is bound to is a deviation, and in enforce the
 * task is killed (the cgroup network programs follow the socket's cgroup,
 * so its new sockets would escape them), with the current task when that
 * is bound to the same workload. Without bpf_send_signal_task (before
 * 6.13) a task other than the current one cannot be killed here: its
 * escaped flag denies its every exec. */
static __always_inline void check_move(struct task_struct *task, struct task_state *ts,
				       struct cgroup *dst)
{
	__u64 cgid = ts->cgid;
	if (!cgid)
		return;
	struct workload *w = bpf_map_lookup_elem(&workloads, &cgid);
	if (!w || cgroup_within(dst, cgid, w->level))
		return;
	ts->flags |= TS_ESCAPED;
	if (w->mode == MODE_OBSERVE)
		return;
	bool enforce = w->mode == MODE_ENFORCE;
	emit_migrate(task, ts, EV_DEVIATION | (enforce ? EV_BLOCKED : 0));
	if (!enforce)
		return;
	struct task_struct *cur = bpf_get_current_task_btf();
	struct task_state *cs = task_state_of(cur);
	if (task == cur || (cs && cs->cgid == cgid))
		bpf_send_signal(SIGKILL);
	if (task != cur && bpf_ksym_exists(bpf_send_signal_task))
		bpf_send_signal_task(task, SIGKILL, PIDTYPE_TGID, 0);
}

/* A new task (process or thread) copies its creator's state. Task storage
 * goes with its task: nothing of it is deleted at exit, so neither the
 * leader's exit while other threads run nor an exec from another thread
 * (de_thread: the exec'ing thread's own storage survives) loses a node. */
SEC("tp_btf/sched_process_fork")
int on_fork(__u64 *ctx)
{
	struct task_struct *parent = (void *)ctx[0];
	struct task_struct *child = (void *)ctx[1];
	struct task_state *ps = task_state_of(parent);
	if (!ps)
		return 0;
	struct task_state *cs = bpf_task_storage_get(&task_states, child, 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!cs) {
		count_state_failure();
		return 0;
	}
	bpf_probe_read_kernel(cs, sizeof(*cs), ps);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (BPF_CORE_READ(child, pid) == ctgid)
		record_net_task(ctgid, cs);
	/* clone3(CLONE_INTO_CGROUP) places the child with no attach event. */
	check_move(child, cs, BPF_CORE_READ(child, cgroups, dfl_cgrp));
	return 0;
}

/* A thread group's net_tasks entry goes when its last thread exits
 * (group_dead: signal->live has dropped to 0 here), not with the leader:
 * the leader may exit first (while other threads run, or during an exec
 * from another thread). */
SEC("tp_btf/sched_process_exit")
int on_exit(__u64 *ctx)
{
	struct task_struct *task = (void *)ctx[0];
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	__u32 tgid = BPF_CORE_READ(task, tgid);
	bpf_map_delete_elem(&net_tasks, &tgid);
	return 0;
}

/* A write to cgroup.procs moved task into dst (v1 hierarchies fire too). */
SEC("tp_btf/cgroup_attach_task")
int on_cgroup_attach(__u64 *ctx)
{
	struct cgroup *dst = (void *)ctx[0];
	struct task_struct *task = (void *)ctx[2];
	if (BPF_CORE_READ(dst, root, hierarchy_id) != 0)
		return 0;
	struct task_state *ts = bpf_task_storage_get(&task_states, task, 0, 0);
	if (ts)
		check_move(task, ts, dst);
	return 0;
}

#endif /* __BULWARK_EXEC_H__ */
