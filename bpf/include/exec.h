/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The exec decision shared by both backends, and the process-tree
 * bookkeeping (fork, exit) they both need.
 *
 * What is checked: the executable is the file the kernel maps, bprm->file.
 * That is /proc/PID/exe: for a script it is the interpreter, for a busybox
 * applet it is /bin/busybox. Its identity is a string and a class (enum
 * exe_class), which policies name the same way:
 *   /usr/bin/x              EXE_PATH: a linked file, resolved by a dentry
 *                           walk up to the workload's root as armed (the
 *                           mount id and inode the engine recorded), not the
 *                           task's current root, so a chroot, a private
 *                           mount namespace or a detached tree (open_tree)
 *                           cannot make a file read as another path;
 *   memfd:NAME              EXE_MEMFD: a memfd (no links, its own parent,
 *                           named "memfd:" + the name its creator chose);
 *   /usr/bin/x (deleted)    EXE_DELETED: an unlinked file, the path it had
 *                           (the kernel's /proc convention);
 *   bind:/sbin/docker-init  EXE_BIND: a regular file that is the root of a
 *                           mount, i.e. a file bind-mounted over the path,
 *                           which is another file than the path names (a
 *                           runtime's init; directory bind mounts such as
 *                           volumes resolve to their mount point's path).
 * A walk that does not end at the workload's root (a mount namespace of its
 * own, a detached tree, an fd from outside, more mounts than MAX_DEPTH + 8
 * steps) is EV_UNRESOLVED, and one longer than PATH_LEN or deeper than
 * MAX_DEPTH is EV_TRUNCATED: neither matches any policy node, and the event
 * carries the components the walk saw.
 *
 * The name is the task's comm (15 characters), which the kernel takes from
 * the last element of the path the caller passed, so a script keeps its own
 * name. The user is the effective uid of the new credentials.
 *
 * Patterns compare bytes, in 64-bit words: an exact string the whole path, a
 * glob `pre*suf` its first len(pre) bytes and its last len(suf) bytes (a copy
 * of the path ending at byte PATH_LEN, so the suffix words line up with the
 * pattern's). The seen-set and synthetic nodes use SipHash-2-4 keyed with a
 * random key (exec_hash_key), so no workload can make a new exec look seen.
 */
#ifndef __BULWARK_EXEC_H__
#define __BULWARK_EXEC_H__

#include "bulwark.h"

#define SIGKILL 9
#define EPERM 1

#define S_IFMT 00170000
#define S_IFREG 0100000

/* Per-CPU working memory of one exec decision. */
struct scratch {
	char path[PATH_LEN * 2];  /* the exe's identity string, from byte 0 */
	char rpath[PATH_LEN * 2]; /* the same string ending at byte PATH_LEN */
	char name[NAME_LEN];
	char rname[NAME_LEN * 2]; /* the name ending at byte NAME_LEN */
	char fname[PATH_LEN];
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
	__u64 root_ino;
	__u32 root_mnt;
	__u32 mnt_id; /* mnt's */
	__u32 n;
	__u32 truncated;
	__u32 reached; /* the walk ended at the workload's root */
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
	struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	if (w->mnt_id == w->root_mnt &&
	    (w->root_ino ? BPF_CORE_READ(dentry, d_inode, i_ino) == w->root_ino : dentry == mnt_root)) {
		w->reached = 1;
		return 1;
	}
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	if (dentry == mnt_root) {
		struct mount *up = BPF_CORE_READ(mnt, mnt_parent);
		if (up == mnt)
			return 1; /* the top of a tree the root is not in */
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		w->vfsmnt = (void *)up + w->mnt_off;
		w->mnt_id = BPF_CORE_READ(up, mnt_id);
		return 0;
	}
	if (dentry == parent)
		return 1; /* a dentry of no directory: unresolved */
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

/* The identity of an executable: its string in s->path (and s->rpath),
 * len bytes, its class, and EV_TRUNCATED / EV_UNRESOLVED. */
struct exe_id {
	__u32 len;
	__u32 cls;   /* enum exe_class */
	__u32 flags; /* EV_TRUNCATED, EV_UNRESOLVED */
};

static const char deleted_suffix[] = " (deleted)";
#define DELETED_LEN (sizeof(deleted_suffix) - 1)

/* memfd_prefix reports whether s->path starts with "memfd:". */
static __always_inline bool memfd_prefix(struct scratch *s)
{
	return s->path[0] == 'm' && s->path[1] == 'e' && s->path[2] == 'm' && s->path[3] == 'f' &&
	       s->path[4] == 'd' && s->path[5] == ':';
}

/* resolve_exe writes file's identity (see the top of this file) to s->path,
 * resolved from workload w's root, and returns it. s->rpath gets the same
 * bytes ending at byte PATH_LEN. */
static __always_inline struct exe_id resolve_exe(struct scratch *s, struct file *file,
						 struct workload *wl)
{
	struct exe_id id = {};
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
	struct vfsmount *vfsmnt = BPF_CORE_READ(file, f_path.mnt);
	struct inode *inode = BPF_CORE_READ(dentry, d_inode);
	__u32 nlink = BPF_CORE_READ(inode, i_nlink);
	__u16 imode = BPF_CORE_READ(inode, i_mode);
	__u32 off = 0;

	if (!nlink && dentry == BPF_CORE_READ(dentry, d_parent)) {
		/* A file on an internal mount: a memfd is named by the
		 * kernel, anything else is unresolved. */
		long n = bpf_probe_read_kernel_str(s->path, PATH_LEN,
						   BPF_CORE_READ(dentry, d_name.name));
		off = n > 0 ? n - 1 : 0;
		if (memfd_prefix(s))
			id.cls = EXE_MEMFD;
		else
			id.flags |= EV_UNRESOLVED;
		goto done;
	}
	if (!nlink)
		id.cls = EXE_DELETED;
	else if ((imode & S_IFMT) == S_IFREG && dentry == BPF_CORE_READ(vfsmnt, mnt_root))
		id.cls = EXE_BIND;

	__u64 mnt_off = bpf_core_field_offset(struct mount, mnt);
	struct mount *mnt = (void *)vfsmnt - mnt_off;
	struct walk_ctx w = {
		.mnt_off = mnt_off,
		.dentry = dentry,
		.vfsmnt = vfsmnt,
		.mnt = mnt,
		.root_ino = wl->root_ino,
		.root_mnt = wl->root_mnt,
		.mnt_id = BPF_CORE_READ(mnt, mnt_id),
	};
	bpf_loop(MAX_DEPTH + 8, walk_step, &w, 0);
	if (id.cls == EXE_BIND) {
		s->path[0] = 'b';
		s->path[1] = 'i';
		s->path[2] = 'n';
		s->path[3] = 'd';
		s->path[4] = ':';
		off = 5;
	}
	struct join_ctx j = { .n = w.n, .off = off };
	bpf_loop(MAX_DEPTH, join_step, &j, 0);
	if (w.truncated | j.truncated)
		id.flags |= EV_TRUNCATED;
	else if (!w.reached)
		id.flags |= EV_UNRESOLVED;
	if (j.off == off) {
		s->path[off & (PATH_LEN - 1)] = '/';
		j.off++;
	}
	off = j.off;
	if (id.cls == EXE_DELETED) {
		if (off + DELETED_LEN >= PATH_LEN) {
			id.flags |= EV_TRUNCATED;
		} else {
#pragma unroll
			for (int k = 0; k < DELETED_LEN; k++)
				s->path[(off + k) & (PATH_LEN - 1)] = deleted_suffix[k];
			off += DELETED_LEN;
		}
	}
done:
	off &= PATH_LEN - 1;
	s->path[off] = 0;
	bpf_probe_read_kernel(&s->rpath[(PATH_LEN - off) & (PATH_LEN - 1)], off, s->path);
	id.len = off;
	return id;
}

/* name_len returns the length of s->name and copies it to s->rname. */
static __always_inline __u32 name_len(struct scratch *s)
{
	__u32 len = 0;
	for (int i = 0; i < NAME_LEN - 1; i++) {
		if (!s->name[i])
			break;
		len++;
	}
	len &= NAME_LEN - 1;
	bpf_probe_read_kernel(&s->rname[(NAME_LEN - len) & (NAME_LEN - 1)], len, s->name);
	return len;
}

/* prefix_equal compares the first n bytes of a and b (words of nw). */
static __always_inline bool prefix_equal(const __u64 *a, const __u64 *b, __u32 n, __u32 nw)
{
	__u32 full = n / 8, rem = n % 8;
	for (__u32 i = 0; i < nw; i++) {
		if (i >= full)
			break;
		if (a[i] != b[i])
			return false;
	}
	if (rem) {
		__u32 k = full & (nw - 1);
		if ((a[k] ^ b[k]) & ((1ULL << (rem * 8)) - 1))
			return false;
	}
	return true;
}

/* suffix_equal compares the last n bytes of a and b (words of nw). */
static __always_inline bool suffix_equal(const __u64 *a, const __u64 *b, __u32 n, __u32 nw)
{
	__u32 start = nw * 8 - n;
	__u32 first = start / 8, rem = start % 8;
	if (rem) {
		__u32 k = first & (nw - 1);
		if ((a[k] ^ b[k]) & (~0ULL << (rem * 8)))
			return false;
		first++;
	}
	for (__u32 i = 0; i < nw; i++) {
		if (i < first)
			continue;
		if (a[i] != b[i])
			return false;
	}
	return true;
}

/* match_bytes tests a pattern (kind, prefix and suffix lengths, its words
 * p) against the len bytes of str (rstr: the same ending at byte 8 * nw). */
static __always_inline bool match_bytes(__u8 kind, __u32 pl, __u32 sl, const __u64 *p,
					const __u64 *str, const __u64 *rstr, __u32 len, __u32 nw)
{
	__u32 max = nw * 8;
	if (pl >= max || sl >= max || len >= max)
		return false;
	/* Keep the bounds: the 6.1 verifier loses them when the values are
	 * spilled to the stack. */
	barrier_var(pl);
	barrier_var(sl);
	barrier_var(len);
	switch (kind) {
	case PAT_ANY:
		return true;
	case PAT_EXACT:
		return pl == len && prefix_equal(p, str, pl, nw);
	case PAT_GLOB:
		return pl + sl <= len && prefix_equal(p, str, pl, nw) &&
		       suffix_equal(p, rstr, sl, nw);
	}
	return false;
}

/* match_exe tests an exe pattern against the identity in s: only an
 * executable of the pattern's class can match. */
static __always_inline bool match_exe(const struct pattern *p, struct scratch *s, __u32 len,
				      __u32 cls)
{
	return p->cls == cls && match_bytes(p->kind, p->prefix_len, p->suffix_len, p->bytes,
					    (const __u64 *)s->path, (const __u64 *)s->rpath,
					    len, PATH_LEN / 8);
}

/* match_name tests a name pattern against s->name, len bytes. */
static __always_inline bool match_name(const struct name_pattern *p, struct scratch *s, __u32 len)
{
	return match_bytes(p->kind, p->prefix_len, p->suffix_len, p->bytes,
			   (const __u64 *)s->name, (const __u64 *)s->rname, len, NAME_LEN / 8);
}

/* SipHash-2-4 state. */
struct sip {
	__u64 v0, v1, v2, v3;
	__u64 len;
};

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static __always_inline void sip_round(struct sip *h)
{
	h->v0 += h->v1;
	h->v1 = ROTL(h->v1, 13);
	h->v1 ^= h->v0;
	h->v0 = ROTL(h->v0, 32);
	h->v2 += h->v3;
	h->v3 = ROTL(h->v3, 16);
	h->v3 ^= h->v2;
	h->v0 += h->v3;
	h->v3 = ROTL(h->v3, 21);
	h->v3 ^= h->v0;
	h->v2 += h->v1;
	h->v1 = ROTL(h->v1, 17);
	h->v1 ^= h->v2;
	h->v2 = ROTL(h->v2, 32);
}

static __always_inline void sip_word(struct sip *h, __u64 m)
{
	h->v3 ^= m;
	sip_round(h);
	sip_round(h);
	h->v0 ^= m;
}

/* sip_step adds word i of s->path (a bpf_loop callback). */
static long sip_step(__u32 i, void *data)
{
	struct sip *h = data;
	struct scratch *s = get_scratch();
	if (!s || i >= h->len / 8)
		return 1;
	sip_word(h, ((const __u64 *)s->path)[i & (PATH_LEN / 8 - 1)]);
	return 0;
}

/* keyed_hash is SipHash-2-4 of the first len bytes of words (s->path when
 * path is set, else the len <= 8 bytes of the word at words). */
static __always_inline __u64 keyed_hash(const __u64 *words, __u32 len, bool path)
{
	__u32 zero = 0;
	struct hash_key *k = bpf_map_lookup_elem(&exec_hash_key, &zero);
	__u64 k0 = k ? k->k0 : 0, k1 = k ? k->k1 : 0;
	struct sip h = {
		.v0 = k0 ^ 0x736f6d6570736575ULL,
		.v1 = k1 ^ 0x646f72616e646f6dULL,
		.v2 = k0 ^ 0x6c7967656e657261ULL,
		.v3 = k1 ^ 0x7465646279746573ULL,
		.len = len,
	};
	__u32 full = len / 8;
	if (path)
		bpf_loop(PATH_LEN / 8, sip_step, &h, 0);
	else if (full)
		sip_word(&h, words[0]);
	__u64 last = (__u64)len << 56;
	__u32 rem = len % 8;
	if (rem)
		last |= words[full & (PATH_LEN / 8 - 1)] & ((1ULL << (rem * 8)) - 1);
	sip_word(&h, last);
	h.v2 ^= 0xff;
	sip_round(&h);
	sip_round(&h);
	sip_round(&h);
	sip_round(&h);
	return h.v0 ^ h.v1 ^ h.v2 ^ h.v3;
}

struct exe_ctx {
	struct node *c;
	__u32 len;
	__u32 cls;
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
	if (match_exe(&c->exe[i & (MAX_EXE - 1)], s, x->len, x->cls)) {
		x->found = 1;
		return 1;
	}
	return 0;
}

/* match_exe_and_uid tests node c's exe patterns and effective uids. */
static __always_inline bool match_exe_and_uid(struct node *c, __u32 len, __u32 cls, __u32 euid)
{
	struct exe_ctx x = { .c = c, .len = len, .cls = cls };
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
	__u32 cls;
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
	struct scratch *s = get_scratch();
	if (!s)
		return 1;
	if (!match_name(&c->name, s, m->nlen))
		return 0;
	if (!match_exe_and_uid(c, m->len, m->cls, m->euid))
		return 0;
	m->found = ck.node;
	return 1;
}

/* match_child returns the id of the child of policy node parent that the
 * exec matches, or 0. */
static __always_inline __u64 match_child(__u32 gen, __u64 parent, struct exe_id *id, __u32 nlen,
					 __u32 euid)
{
	struct match_ctx m = {
		.parent = parent, .gen = gen, .len = id->len, .cls = id->cls, .nlen = nlen,
		.euid = euid,
	};
	bpf_loop(MAX_CHILDREN, match_one, &m, 0);
	return m.found;
}

/* emit_process reports a process event (EVENT_EXEC, EVENT_CRED) of the
 * current task: its move from node parent to node, named s->name and
 * s->path, with its credentials (old_euid: before a cred change). */
static __always_inline void emit_process(struct scratch *s, struct task_struct *task, __u64 cgid,
					 __u32 kind, __u64 node, __u64 parent, __u32 flags,
					 __u32 uid, __u32 old_euid, __u32 euid)
{
	/* A deviation's repeats (same workload, nodes and euid: the node of
	 * a deviating exec derives from its exe and name) are only counted. */
	struct dev_count *slot = NULL;
	__u64 count = 1;
	if (flags & EV_DEVIATION) {
		struct dev_key k = {
			.cgid = cgid, .node = node, .a = parent,
			.kind_flags = kind << 16 | flags, .c = euid,
		};
		count = dev_occurred(&k, &slot);
		if (!count)
			return;
	}
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_loss(cgid, LOSS_EVENTS);
		dev_reported(slot, count, false);
		return;
	}
	e->time_ns = bpf_ktime_get_ns();
	e->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	e->cgid = cgid;
	e->node = node;
	e->parent_node = parent;
	e->count = count;
	e->kind = kind;
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
	e->old_euid = old_euid;
	e->pad2 = 0;
	bpf_probe_read_kernel(e->comm, sizeof(e->comm), s->name);
	bpf_probe_read_kernel(e->exe, sizeof(e->exe), s->path);
	bpf_ringbuf_submit(e, 0);
	dev_reported(slot, count, true);
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
	struct exe_id id = resolve_exe(s, file, w);
	__u32 nlen = name_len(s);
	__u64 exe_hash = keyed_hash((const __u64 *)s->path, id.len, true) + id.cls;
	__u64 name_hash = keyed_hash((const __u64 *)s->name, nlen, false);
	__u64 parent = x->parent;
	__u32 escaped = x->escaped;
	__u64 node = 0;
	__u32 flags = id.flags;

	/* NODE_UNKNOWN has no children: nothing matches under it. */
	if (mode != MODE_OBSERVE && !id.flags)
		node = match_child(gen, parent, &id, nlen, euid);
	if (!node) {
		/* Not a policy node: a synthetic node keeps its descendants
		 * apart (and never matches a policy node). */
		node = parent * FNV_PRIME ^ exe_hash;
		node = node * FNV_PRIME ^ name_hash;
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
		emit_process(s, task, cgid, EVENT_EXEC, node, parent, flags, uid, 0, euid);
	} else {
		struct seen_key k = {
			.cgid = cgid,
			.a = parent,
			.b = exe_hash,
			.c = name_hash,
			.kind_gen = EVENT_EXEC << 24 | (gen & 0xffffff),
			.d = euid,
		};
		if (first_seen(&k))
			emit_process(s, task, cgid, EVENT_EXEC, node, parent, flags, uid, 0, euid);
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
	own->flags = escaped | (id.flags ? TS_TRUNCATED : 0);
	own->exe_cls = id.cls;
	/* The tracing backend sees the new credentials, the lsm backend the
	 * old ones (committed later): sys_exit then finds the pointer changed
	 * and the euid recorded here, and only takes the new pointer. */
	own->cred = (__u64)BPF_CORE_READ(task, cred);
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
		count_loss(ts->cgid, LOSS_EVENTS);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->time_ns = bpf_ktime_get_ns();
	e->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	e->count = 1;
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
	/* A process gets credentials of its own (same euid), a thread its
	 * creator's. */
	cs->cred = (__u64)BPF_CORE_READ(child, cred);
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
