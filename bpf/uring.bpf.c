//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * io_uring accepts (IORING_OP_ACCEPT), decided for the node of the task
 * that submitted them, as accept(2) is at syscall exit (sysexit.h): both
 * backends load this object (tp_btf tracepoints only; the engine attaches
 * the submit and complete programs that match the kernel's tracepoints).
 *
 * - Submit (io_uring_submit_req, Linux 6.5+; io_uring_submit_sqe before):
 *   an accept submitted by a workload's task is remembered, keyed by its
 *   request, with the submitter's workload, node and thread group, and
 *   where the accepted file goes (a descriptor, or a slot of the ring's
 *   fixed-file table for a direct accept). An accept whose success the
 *   kernel will not report (IOSQE_CQE_SKIP_SUCCESS) is decided there, for
 *   a peer the policy cannot know (0.0.0.0 or ::): only a rule giving the
 *   node the port from any address allows it.
 * - Complete (io_uring_complete; its arguments changed in Linux 6.18) and
 *   CQ overflow (io_uring_cqe_overflow, where the completion did not fit
 *   the CQ ring and no complete event fires on 6.12+): a result >= 0 is
 *   the new descriptor (or fixed-file slot); its socket is checked with
 *   the accept path's check, for the remembered node. A connection no rule
 *   gives that node is a deviation reported with it; in enforce the
 *   submitter's process is killed before the completion reaches it (the
 *   completion runs in its threads: the submitter, an io-wq worker, or the
 *   SQPOLL thread of the ring's owner, when it submitted). Multishot
 *   accepts post their completions without the request (NULL in the
 *   tracepoint): those are found by (ring, user_data).
 *
 * The tables are bounded; a submit that finds them full is counted in
 * uring_full and, in enforce, kills the submitter (fail closed).
 */
#include "include/sockfile.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SIGKILL 9
#define IORING_OP_ACCEPT 13
#define IORING_FILE_INDEX_ALLOC (~0U)
#define IORING_CQE_F_MORE (1U << 1)
#define REQ_F_FIXED_FILE (1U << 0) /* = IOSQE_FIXED_FILE_BIT, in every kernel */
#define REQ_F_CQE_SKIP (1U << 6)   /* = IOSQE_CQE_SKIP_SUCCESS_BIT, in every kernel */
#define FFS_MASK (~7UL)          /* flag bits of a fixed file's file_ptr */

struct io_ring_ctx;

struct io_cqe {
	__u64 user_data;
	__s32 res;
	union {
		__u32 flags;
		int fd; /* before the request is issued: the descriptor it names */
	};
} __attribute__((preserve_access_index));

struct io_kiocb {
	__u8 opcode;
	__u32 flags; /* u64 from 6.10: the low half, little-endian */
	struct io_cqe cqe;
	struct io_ring_ctx *ctx;
} __attribute__((preserve_access_index));

/* The accept's command, at the start of its request (io_kiocb_to_cmd). */
struct io_accept {
	__u32 file_slot; /* 0: a descriptor; slot + 1; or IORING_FILE_INDEX_ALLOC */
} __attribute__((preserve_access_index));

struct io_uring_cqe {
	__u64 user_data;
	__s32 res;
	__u32 flags;
} __attribute__((preserve_access_index));

/* The fixed-file table: an array of io_fixed_file before Linux 6.13, of
 * io_rsrc_node pointers since. */
struct io_fixed_file {
	unsigned long file_ptr;
} __attribute__((preserve_access_index));

struct io_file_table___files {
	struct io_fixed_file *files;
} __attribute__((preserve_access_index));

struct io_ring_ctx___files {
	struct io_file_table___files file_table;
	unsigned int nr_user_files;
} __attribute__((preserve_access_index));

struct io_rsrc_node {
	unsigned long file_ptr;
} __attribute__((preserve_access_index));

struct io_rsrc_data {
	unsigned int nr;
	struct io_rsrc_node **nodes;
} __attribute__((preserve_access_index));

struct io_file_table {
	struct io_rsrc_data data;
} __attribute__((preserve_access_index));

struct io_ring_ctx {
	struct io_file_table file_table;
} __attribute__((preserve_access_index));

/* Present from Linux 6.2 and 6.13; bpf_ksym_exists tells. */
extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym __weak;
extern void bpf_task_release(struct task_struct *p) __ksym __weak;
extern int bpf_send_signal_task(struct task_struct *task, int sig, enum pid_type type,
				__u64 value) __ksym __weak;

#ifndef bpf_ksym_exists
#define bpf_ksym_exists(sym) (!!&(sym))
#endif

/* What an accept's completion is decided with: its submitter. */
struct uring_accept {
	__u64 node;
	__u64 cgid;
	__u64 ring; /* the ring's io_ring_ctx */
	__u64 user_data;
	__u32 tgid;
	__u32 slot; /* io_accept.file_slot */
};

/* Accepts in flight, by request (io_kiocb). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct uring_accept);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} uring_accepts SEC(".maps");

struct ring_key {
	__u64 ring;
	__u64 user_data;
};

/* The same, by ring and user_data, for completions that come without
 * their request (multishot, overflow); refs counts the accepts in flight
 * with that key, the submitter is the last one's. */
struct ring_accept {
	struct uring_accept a;
	__u64 refs;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ring_key);
	__type(value, struct ring_accept);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} uring_rings SEC(".maps");

/* How many entries uring_accepts holds (an upper bound): while it is 0,
 * completions, which every ring of the host raises, return at once. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} uring_inflight SEC(".maps");

/* Submits that found a table full, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} uring_full SEC(".maps");

/* fixed_file returns the file in slot of ring's fixed-file table, or NULL. */
static __always_inline struct file *fixed_file(struct io_ring_ctx *ring, __u32 slot)
{
	unsigned long ptr = 0;
	if (bpf_core_field_exists(struct io_file_table___files, files)) {
		struct io_ring_ctx___files *r = (void *)ring;
		if (slot >= BPF_CORE_READ(r, nr_user_files))
			return NULL;
		struct io_fixed_file *files = BPF_CORE_READ(r, file_table.files);
		if (!files || bpf_probe_read_kernel(&ptr, sizeof(ptr), &files[slot].file_ptr))
			return NULL;
	} else {
		if (slot >= BPF_CORE_READ(ring, file_table.data.nr))
			return NULL;
		struct io_rsrc_node **nodes = BPF_CORE_READ(ring, file_table.data.nodes);
		struct io_rsrc_node *node = NULL;
		if (!nodes || bpf_probe_read_kernel(&node, sizeof(node), &nodes[slot]) || !node)
			return NULL;
		ptr = BPF_CORE_READ(node, file_ptr);
	}
	return (struct file *)(ptr & FFS_MASK);
}

/* kill_submitter kills the thread group of a: the current one when it is
 * (bpf_send_signal), else by pid where the kernel lets a program signal
 * another task (6.13+). */
static __always_inline void kill_submitter(const struct uring_accept *a)
{
	if ((bpf_get_current_pid_tgid() >> 32) == a->tgid) {
		bpf_send_signal(SIGKILL);
		return;
	}
	if (!bpf_ksym_exists(bpf_task_from_pid) || !bpf_ksym_exists(bpf_send_signal_task))
		return;
	struct task_struct *t = bpf_task_from_pid(a->tgid);
	if (!t)
		return;
	bpf_send_signal_task(t, SIGKILL, PIDTYPE_TGID, 0);
	bpf_task_release(t);
}

/* decide checks the connection accept a produced (res: its descriptor or
 * fixed-file slot) for the submitter's node; kills the submitter when
 * the check blocks it. */
static __always_inline void decide(const struct uring_accept *a, __s32 res)
{
	__u64 cgid = a->cgid;
	struct workload *w = bpf_map_lookup_elem(&workloads, &cgid);
	if (!w)
		return;
	struct file *file;
	if (!a->slot)
		file = fd_file(bpf_get_current_task_btf(), res);
	else
		file = fixed_file((struct io_ring_ctx *)a->ring,
				  a->slot == IORING_FILE_INDEX_ALLOC ? (__u32)res : a->slot - 1);
	struct conn c = { .dir = DIR_INGRESS };
	if (file_conn(file, &c))
		return;
	bool own = (bpf_get_current_pid_tgid() >> 32) == a->tgid;
	if (!check_conn(&c, w, cgid, a->node, own))
		kill_submitter(a);
}

/* submitted remembers (or, with CQE_SKIP_SUCCESS, decides) an accept. */
static __always_inline void submitted(struct io_kiocb *req)
{
	if (req->opcode != IORING_OP_ACCEPT) /* req is the kernel's: a plain load */
		return;
	__u64 cgid = 0;
	struct workload *w = current_workload(&cgid);
	if (!w)
		return;
	struct io_accept *acc = (void *)req;
	struct uring_accept a = {
		.node = current_node(),
		.cgid = cgid,
		.ring = (__u64)BPF_CORE_READ(req, ctx),
		.user_data = BPF_CORE_READ(req, cqe.user_data),
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.slot = BPF_CORE_READ(acc, file_slot),
	};
	__u32 flags = BPF_CORE_READ(req, flags);
	if (flags & REQ_F_CQE_SKIP) {
		/* No completion will tell the peer: decide the listener's port
		 * for a peer the policy cannot know (the listener's socket has
		 * none: 0.0.0.0 or ::). Until the request is issued, cqe.fd is
		 * the descriptor or fixed-file slot it names. */
		int fd = BPF_CORE_READ(req, cqe.fd);
		struct file *lf = flags & REQ_F_FIXED_FILE ? fixed_file((void *)a.ring, fd)
							   : fd_file(bpf_get_current_task_btf(), fd);
		struct conn c = { .dir = DIR_INGRESS };
		if (file_conn(lf, &c)) {
			c.proto = IPPROTO_TCP;
			c.family = AF_INET;
		}
		if (!check_conn(&c, w, cgid, a.node, true))
			bpf_send_signal(SIGKILL);
		return;
	}
	__u64 key = (__u64)req;
	struct ring_key rk = { .ring = a.ring, .user_data = a.user_data };
	__u32 zero = 0;
	__u64 *inflight = bpf_map_lookup_elem(&uring_inflight, &zero);
	if (inflight)
		__sync_fetch_and_add(inflight, 1);
	int err = bpf_map_update_elem(&uring_accepts, &key, &a, BPF_ANY);
	if (!err) {
		struct ring_accept *ra = bpf_map_lookup_elem(&uring_rings, &rk);
		if (ra) {
			ra->a = a;
			__sync_fetch_and_add(&ra->refs, 1);
		} else {
			struct ring_accept first = { .a = a, .refs = 1 };
			err = bpf_map_update_elem(&uring_rings, &rk, &first, BPF_NOEXIST);
			if (err && (ra = bpf_map_lookup_elem(&uring_rings, &rk))) {
				/* Another CPU made it meanwhile. */
				__sync_fetch_and_add(&ra->refs, 1);
				err = 0;
			}
			if (err)
				bpf_map_delete_elem(&uring_accepts, &key);
		}
	}
	if (!err)
		return;
	if (inflight)
		__sync_fetch_and_add(inflight, -1);
	__u64 *n = bpf_map_lookup_elem(&uring_full, &zero);
	if (n)
		(*n)++;
	if (w->mode == MODE_ENFORCE)
		bpf_send_signal(SIGKILL);
}

/* completed decides a completion of ring (req NULL when it came without
 * its request) that carries user_data, res and cflags. */
static __always_inline void completed(void *ring, struct io_kiocb *req, __u64 user_data,
				      __s32 res, __u32 cflags)
{
	__u32 zero = 0;
	__u64 *inflight = bpf_map_lookup_elem(&uring_inflight, &zero);
	if (!inflight || !*inflight)
		return;
	struct uring_accept a;
	if (req) {
		if (BPF_CORE_READ(req, opcode) != IORING_OP_ACCEPT)
			return;
		__u64 key = (__u64)req;
		struct uring_accept *p = bpf_map_lookup_elem(&uring_accepts, &key);
		if (!p)
			return;
		a = *p;
		if (!(cflags & IORING_CQE_F_MORE) && !bpf_map_delete_elem(&uring_accepts, &key)) {
			__sync_fetch_and_add(inflight, -1);
			struct ring_key rk = { .ring = a.ring, .user_data = a.user_data };
			struct ring_accept *ra = bpf_map_lookup_elem(&uring_rings, &rk);
			if (ra && __sync_fetch_and_add(&ra->refs, -1) <= 1)
				bpf_map_delete_elem(&uring_rings, &rk);
		}
	} else {
		struct ring_key rk = { .ring = (__u64)ring, .user_data = user_data };
		struct ring_accept *ra = bpf_map_lookup_elem(&uring_rings, &rk);
		if (!ra)
			return;
		a = ra->a;
	}
	if (res >= 0)
		decide(&a, res);
}

/* Submit, Linux 6.5 and later. */
SEC("tp_btf/io_uring_submit_req")
int BPF_PROG(on_uring_submit, struct io_kiocb *req)
{
	submitted(req);
	return 0;
}

/* Submit, before Linux 6.5. */
SEC("tp_btf/io_uring_submit_sqe")
int BPF_PROG(on_uring_submit_sqe, struct io_kiocb *req, bool force_nonblock)
{
	submitted(req);
	return 0;
}

/* Complete, before Linux 6.18. */
SEC("tp_btf/io_uring_complete")
int BPF_PROG(on_uring_complete_args, void *ring, void *req, __u64 user_data, int res,
	     unsigned int cflags, __u64 extra1, __u64 extra2)
{
	completed(ring, req, user_data, res, cflags);
	return 0;
}

/* Complete, Linux 6.18 and later: the CQE itself. */
SEC("tp_btf/io_uring_complete")
int BPF_PROG(on_uring_complete, void *ring, void *req, struct io_uring_cqe *cqe)
{
	completed(ring, req, BPF_CORE_READ(cqe, user_data), BPF_CORE_READ(cqe, res),
		  BPF_CORE_READ(cqe, flags));
	return 0;
}

/* A completion that did not fit the CQ ring (no complete event on 6.12+). */
SEC("tp_btf/io_uring_cqe_overflow")
int BPF_PROG(on_uring_overflow, void *ring, __u64 user_data, __s32 res, __u32 cflags, void *ocqe)
{
	completed(ring, NULL, user_data, res, cflags);
	return 0;
}
