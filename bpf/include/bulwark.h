/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared between the BPF programs and Go (bpf2go -type generates the
 * Go side), the maps every program family shares (pinned by name, so the
 * exec and network objects see the same tables), and small helpers.
 */
#ifndef __BULWARK_H__
#define __BULWARK_H__

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

/* Limits; Compile in Go reports a policy that exceeds one as an error. */
#define PATH_LEN 256     /* resolved exe path; longer paths never match */
#define NAME_LEN 16      /* comm, like TASK_COMM_LEN */
#define MAX_CHILDREN 64  /* children of one policy node (or roots) */
#define MAX_EXE 8        /* exe entries of one policy node */
#define MAX_UIDS 8       /* effective uids of one policy node */
#define MAX_RULES 64     /* network rules per direction (a u64 mask) */
#define MAX_PORTS 8      /* ports entries of one network rule */
#define MAX_PROCS 8      /* processes entries of one network rule */
#define MAX_LEVEL 16    /* deepest cgroup level a workload may sit at */
#define MAX_DEPTH 32     /* path components walked to resolve an exe */

/* Workload modes (struct workload.mode). */
enum mode {
	MODE_OBSERVE = 0, /* no policy: report what runs, for fingerprints */
	MODE_AUDIT = 1,   /* check and report, never block */
	MODE_ENFORCE = 2, /* check, block and report */
};

/* Workload flags: checks switched off by the policy. */
enum workload_flag {
	WL_NO_PROCESS = 1,
	WL_NO_INGRESS = 2,
	WL_NO_EGRESS = 4,
};

/* Event kinds. */
enum event_kind {
	EVENT_EXEC = 1,
	EVENT_CONNECT = 2,
	EVENT_ACCEPT = 3,
	EVENT_LISTEN = 4, /* a process bound a port (observation only) */
	EVENT_SOCKET = 5, /* a protocol the policy cannot name (raw, packet, ...) */
	EVENT_MIGRATE = 6, /* a task bound to a workload left its cgroup */
	EVENT_CRED = 7, /* a task's effective uid changed (setuid family) */
};

/* Event flags. */
enum event_flag {
	EV_DEVIATION = 1,
	EV_BLOCKED = 2,
	EV_TRUNCATED = 4, /* exe path longer than PATH_LEN or deeper than MAX_DEPTH */
	EV_UNRESOLVED = 8, /* exe not reached from the workload's root (exec.h) */
	EV_NAMED = 16, /* connect: the workload resolved the peer; exe holds the name (dns.h) */
};

/* Pattern kinds: how a name or exe entry is tested. */
enum pattern_kind {
	PAT_NONE = 0,
	PAT_EXACT = 1, /* the whole string: prefix_len bytes */
	PAT_GLOB = 2,  /* prefix, anything, suffix */
	PAT_ANY = 3,   /* "*" */
	PAT_WILD = 4,  /* any other glob of '*' and '?': its text (glob.h) */
};

/* What kind of file an exec maps (exec.h says how each is told apart and
 * named). A pattern matches only executables of its own class, so "*" or
 * a glob under /usr never match an anonymous or bind-mounted file. */
enum exe_class {
	EXE_PATH = 0,    /* a linked file reached from the workload's root */
	EXE_MEMFD = 1,   /* memfd:NAME */
	EXE_DELETED = 2, /* PATH (deleted): an unlinked file */
	EXE_BIND = 3,    /* bind:PATH: a file bind-mounted at PATH */
};

/* Marks a task node that is not a policy node: observe mode and audited
 * deviations get a synthetic node so their descendants stay apart. */
#define NODE_SYNTHETIC (1ULL << 63)

/* The synthetic node of a task whose node is unknown: created inside a
 * workload but found without state, or running before the engine. It has
 * no children, so every exec from it is a deviation. */
#define NODE_UNKNOWN (NODE_SYNTHETIC | 1)

/* One entry of the workloads table, keyed by cgroup id. */
struct workload {
	__u32 gen;   /* generation of the policy tables in force */
	__u32 mode;  /* enum mode */
	__u32 flags; /* enum workload_flag */
	__u32 level; /* cgroup level, for nested cgroups */
	/* The workload's root as armed, where exe paths are resolved from:
	 * its mount's id and its directory's inode number, 0 when it is the
	 * root of that mount (as a container's is). */
	__u64 root_ino;
	__u32 root_mnt;
	/* Which table of dns_grants holds the workload's DNS grants: the
	 * one under key GRANTS_KEY(grants); 0 for none (nothing granted). */
	__u32 grants;
};

/* Global settings, index 0 of the config array. */
struct engine_config {
	__u32 level_mask; /* bit L: some workload sits at cgroup level L */
	__u32 next_gen;   /* the next policy generation to hand out */
	__u32 dns_floor_s; /* shortest life of a DNS grant, seconds (0: 60) */
	__u32 dns_cap_s;   /* longest life of a DNS grant, seconds (0: 3600) */
};

struct node_key {
	__u32 gen;
	__u32 pad;
	__u64 node; /* policy node id hash; 0 is the pseudo-node holding the roots */
};

/* An exe pattern. Its bytes, read as little-endian words, hold the prefix
 * (or the exact string) from byte 0 and the suffix ending at byte PATH_LEN;
 * the kernel compares them with the path's bytes. */
struct pattern {
	__u16 prefix_len;
	__u16 suffix_len;
	__u8 kind; /* enum pattern_kind */
	__u8 cls;  /* enum exe_class */
	__u8 pad[2];
	__u64 bytes[PATH_LEN / 8];
};

/* A name pattern: as struct pattern, the suffix ending at byte NAME_LEN. */
struct name_pattern {
	__u16 prefix_len;
	__u16 suffix_len;
	__u8 kind; /* enum pattern_kind */
	__u8 pad[3];
	__u64 bytes[NAME_LEN / 8];
};

/* A policy node: how to recognise it and which nodes it may exec. */
struct node {
	__u32 nchildren;
	__u32 nexe;
	__u32 nuids; /* 0: any effective uid */
	__u32 pad;
	__u64 children[MAX_CHILDREN];
	struct name_pattern name;
	struct pattern exe[MAX_EXE];
	__u32 uids[MAX_UIDS];
};

/* Network tables: gen_dir = generation << 1 | direction (0 egress, 1 ingress). */
struct lpm_v4_key {
	__u32 prefixlen; /* 32 (gen_dir) + address bits */
	__u32 gen_dir;
	__u8 addr[4];
};

struct lpm_v6_key {
	__u32 prefixlen; /* 32 (gen_dir) + address bits */
	__u32 gen_dir;
	__u8 addr[16];
};

struct rule_key {
	__u32 gen_dir;
	__u32 index;
};

struct port_range {
	__u16 lo;
	__u16 hi;
	__u8 proto; /* IPPROTO_TCP, IPPROTO_UDP, 0 for both */
	__u8 pad[3];
};

struct rule {
	__u32 nports;
	__u32 nprocs; /* 0: any process */
	struct port_range ports[MAX_PORTS];
	__u64 procs[MAX_PROCS];
};

/* The process node of a listening port, recorded at bind(). */
struct listener_key {
	__u64 cgid; /* workload cgroup id */
	__u16 port;
	__u8 proto;
	__u8 pad[5];
};

/* What the seen-set deduplicates observations by. */
struct seen_key {
	__u64 cgid;
	__u64 a; /* exec: parent node; network: process node */
	__u64 b; /* exec: exe keyed hash; network: address, high half (listen: 0) */
	__u64 c; /* exec: name keyed hash; network: address, low half (listen: 0) */
	__u32 kind_gen; /* kind << 24 | generation */
	__u32 d;        /* exec: euid;     network: family << 24 | proto << 16 | port */
	__u64 name;     /* exec: 0;        network: the resolved name's hash (0: none) */
};

struct event {
	__u64 time_ns; /* CLOCK_MONOTONIC */
	__u64 start_ns; /* the process's start (leader's start_boottime); 0 without a task */
	__u64 cgid;
	__u64 node;
	__u64 parent_node;
	__u64 count; /* occurrences this event stands for (deviations: see dev_occurred) */
	__u32 kind;
	__u32 flags;
	__u32 pid;
	__u32 ppid;
	__u32 uid;
	__u32 euid;
	__u16 family; /* AF_INET or AF_INET6 (network events) */
	__u8 proto;
	__u8 pad;
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[NAME_LEN];
	char exe[PATH_LEN]; /* process events: the exe; EV_NAMED connects: the DNS name */
	__u32 old_euid; /* cred events: the euid before the change */
	__u32 pad2;
};

/* Size of a network event record: struct event up to exe, which only
 * process events (exec, migrate, cred) carry. */
#define EVENT_CONN_SIZE __builtin_offsetof(struct event, exe)

/* Size of a named connect's record (EV_NAMED): up to the end of exe. */
#define EVENT_NAMED_SIZE __builtin_offsetof(struct event, old_euid)

/* Shared maps, pinned by name under the engine's pin directory. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct workload);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} workloads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct engine_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct node_key);
	__type(value, struct node);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} policy_nodes SEC(".maps");

/* Task state flags. */
enum task_flag {
	TS_TRUNCATED = 1, /* the last exec's exe did not fit: matches no node */
	TS_ESCAPED = 2,   /* left its workload's cgroup */
	TS_NO_EXEC = 4,   /* no exec recorded (written by placement) */
};

/* The state of a task that is or was inside a workload, in task storage:
 * its process node, the workload it stays bound to wherever it moves, and
 * what its last exec was (the kernel's record, for placement; a cred
 * change keeps name and exe and records the new euid). Forks and
 * new threads copy their creator's; a thread's process is its group
 * leader's state when that is newer (placement writes the leader's). */
struct task_state {
	__u64 node;
	__u64 cgid;  /* workload cgroup id */
	__u64 stamp; /* CLOCK_MONOTONIC ns of the last exec, placement or cred change */
	__u64 cred;  /* this thread's task->cred when euid was last recorded */
	__u32 euid;  /* effective uid: of the last exec, or the last cred change */
	__u32 flags; /* enum task_flag */
	__u32 exe_cls; /* enum exe_class of exe */
	__u32 pad;
	char name[NAME_LEN];
	char exe[PATH_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} task_states SEC(".maps");

/* Whether this program may call bpf_task_storage_get: Open clears it for
 * the network programs where cgroup programs may not (before Linux 6.x),
 * which then read net_tasks instead. */
volatile const __u32 use_task_storage = 1;

/* What the network programs need of a process's task state, by tgid, for
 * kernels where they cannot read task storage: written wherever the node
 * changes (exec, fork, placement), deleted when the thread group exits. A
 * full table leaves a process without entry: its network checks run as
 * node 0, which no process-restricted rule allows (and it is counted). */
struct net_task {
	__u64 node;
	__u64 cgid;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct net_task);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} net_tasks SEC(".maps");

/* Task states that could not be created or were found missing, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} state_failures SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct seen_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} seen SEC(".maps");

/* Two rings, so that no flood of network events can starve exec events:
 * events carries what processes do (execs, and the observations of the
 * process tree), net_events the network events. Each is read by the agent
 * in that order of priority. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22); /* 4 MiB: ~10k exec events */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

/* The SipHash key of the exec seen-set and synthetic nodes: random, written
 * by the engine when it creates the maps. */
struct hash_key {
	__u64 k0;
	__u64 k1;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hash_key);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} exec_hash_key SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24); /* 16 MiB: ~130k network events of a burst */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} net_events SEC(".maps");

/* Indexes of the global per-CPU loss counters. */
enum loss {
	LOSS_EVENTS = 0,       /* an event the ring had no room for */
	LOSS_UNAGGREGATED = 1, /* a deviation the deviations table had no room for (emitted alone) */
	LOSS_DNS = 2,          /* a DNS answer not parsed within the bounds: it granted nothing */
};

/* Losses of all workloads, per CPU, by enum loss. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lost SEC(".maps");

/* Losses of one workload (the value of workload_losses). */
struct losses {
	__u64 events;       /* LOSS_EVENTS */
	__u64 unaggregated; /* LOSS_UNAGGREGATED */
	__u64 dns;          /* LOSS_DNS */
};

/* Losses by workload cgroup id; a workload missing from a full table is
 * counted in lost only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct losses);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} workload_losses SEC(".maps");

/* What repeats of a deviation are aggregated by: the workload, the process
 * node, the kind and verdict, and the target. */
struct dev_key {
	__u64 cgid;
	__u64 node;
	__u64 a;         /* exec: parent node; network: peer address, high half */
	__u64 b;         /* exec: 0;           network: peer address, low half */
	__u32 kind_flags; /* kind << 16 | event flags */
	__u32 c;         /* exec: euid;        network: family << 24 | proto << 16 | policy port */
	__u64 name;      /* exec: 0;           network: the resolved name's hash (0: none) */
};

/* How often a deviation occurred since the agent last drained it. */
struct dev_count {
	__u64 count;    /* occurrences */
	__u64 reported; /* occurrences the emitted events carried */
	__u64 first_ns; /* CLOCK_MONOTONIC */
	__u64 last_ns;
	__u32 retry;    /* an event was lost: the next occurrence emits again */
	__u32 pad;
};

/* Deviations seen since the agent's last drain: the first occurrence is
 * emitted, repeats only counted here (Engine.DrainRepeats). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dev_key);
	__type(value, struct dev_count);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} deviations SEC(".maps");

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

/* count_loss counts one loss (enum loss) of workload cgid. */
static __always_inline void count_loss(__u64 cgid, __u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &which);
	if (n)
		(*n)++;
	struct losses *l = bpf_map_lookup_elem(&workload_losses, &cgid);
	if (!l) {
		struct losses zero = {};
		bpf_map_update_elem(&workload_losses, &cgid, &zero, BPF_NOEXIST);
		l = bpf_map_lookup_elem(&workload_losses, &cgid);
		if (!l)
			return;
	}
	if (which == LOSS_EVENTS)
		__sync_fetch_and_add(&l->events, 1);
	else if (which == LOSS_UNAGGREGATED)
		__sync_fetch_and_add(&l->unaggregated, 1);
	else
		__sync_fetch_and_add(&l->dns, 1);
}

/* dev_occurred counts one occurrence of deviation k and returns how many
 * occurrences an event emitted now stands for: 1 for the first (only the
 * CPU that created the entry emits it), more when the event of earlier ones
 * was lost, 0 when this one is only counted. *slot is set to the table
 * entry (NULL when the table is full: then every occurrence is emitted,
 * and counted as unaggregated); after emitting, call dev_reported. */
static __always_inline __u64 dev_occurred(struct dev_key *k, struct dev_count **slot)
{
	__u64 now = bpf_ktime_get_ns();
	struct dev_count *d = bpf_map_lookup_elem(&deviations, k);
	if (!d) {
		struct dev_count first = { .count = 1, .first_ns = now, .last_ns = now };
		if (!bpf_map_update_elem(&deviations, k, &first, BPF_NOEXIST)) {
			*slot = bpf_map_lookup_elem(&deviations, k);
			return 1;
		}
		/* Another CPU created it meanwhile, or the table is full. */
		d = bpf_map_lookup_elem(&deviations, k);
	}
	*slot = d;
	if (!d) {
		count_loss(k->cgid, LOSS_UNAGGREGATED);
		return 1;
	}
	__sync_fetch_and_add(&d->count, 1);
	d->last_ns = now;
	if (!d->retry)
		return 0;
	d->retry = 0;
	return d->count - d->reported;
}

/* dev_reported records whether the event carrying n occurrences of the
 * deviation in slot was emitted (else the next occurrence tries again). */
static __always_inline void dev_reported(struct dev_count *slot, __u64 n, bool emitted)
{
	if (!slot)
		return;
	if (emitted)
		__sync_fetch_and_add(&slot->reported, n);
	else
		slot->retry = 1;
}

static __always_inline void count_state_failure(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&state_failures, &zero);
	if (n)
		(*n)++;
}

/* The state of task: its own, or its group leader's when that is newer. */
static __always_inline struct task_state *task_state_of(struct task_struct *task)
{
	struct task_state *ts = bpf_task_storage_get(&task_states, task, 0, 0);
	struct task_struct *leader = task->group_leader;
	if (!leader || leader == task)
		return ts;
	struct task_state *ls = bpf_task_storage_get(&task_states, leader, 0, 0);
	if (ls && (!ts || ls->stamp > ts->stamp))
		return ls;
	return ts;
}

/* The workload the current task belongs to: the one its state is bound to
 * (wherever it moved since), else its own cgroup's, or the nearest
 * ancestor's at a level where some workload sits. */
/* current_binding returns the workload cgroup id and node the current task
 * is bound to, from its task state or (where this program cannot read task
 * storage) net_tasks; false when it has none. */
static __always_inline bool current_binding(__u64 *cgid, __u64 *node)
{
	if (use_task_storage) {
		struct task_state *ts = task_state_of(bpf_get_current_task_btf());
		if (!ts)
			return false;
		*cgid = ts->cgid;
		*node = ts->node;
		return true;
	}
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct net_task *nt = bpf_map_lookup_elem(&net_tasks, &tgid);
	if (!nt)
		return false;
	*cgid = nt->cgid;
	*node = nt->node;
	return true;
}

static __always_inline struct workload *current_workload(__u64 *cgid)
{
	struct workload *w;
	__u64 id = 0, node;
	if (current_binding(&id, &node) && id) {
		w = bpf_map_lookup_elem(&workloads, &id);
		if (w) {
			*cgid = id;
			return w;
		}
	}
	id = bpf_get_current_cgroup_id();
	w = bpf_map_lookup_elem(&workloads, &id);
	if (w) {
		*cgid = id;
		return w;
	}
	__u32 zero = 0;
	struct engine_config *c = bpf_map_lookup_elem(&config, &zero);
	if (!c || !c->level_mask)
		return NULL;
	__u32 mask = c->level_mask;
	for (int l = MAX_LEVEL - 1; l >= 1; l--) {
		if (!(mask & (1U << l)))
			continue;
		id = bpf_get_current_ancestor_cgroup_id(l);
		if (!id)
			continue;
		w = bpf_map_lookup_elem(&workloads, &id);
		if (w) {
			*cgid = id;
			return w;
		}
	}
	return NULL;
}

/* Whether an observation with this key is new; records it. */
static __always_inline bool first_seen(struct seen_key *k)
{
	__u8 one = 1;
	if (bpf_map_lookup_elem(&seen, k))
		return false;
	bpf_map_update_elem(&seen, k, &one, BPF_ANY);
	return true;
}

/* The process node of the current task; 0 when it has no state. */
static __always_inline __u64 current_node(void)
{
	__u64 cgid, node;
	return current_binding(&cgid, &node) ? node : 0;
}

#endif /* __BULWARK_H__ */
