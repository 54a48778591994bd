/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Exact matching of PAT_WILD name patterns: globs of '*' (any bytes) and
 * '?' (one byte) that a prefix and a suffix test cannot express, such as
 * *tables* or *0-a*. The glob's text is the pattern's first prefix_len
 * bytes; the name is the task's comm. Exe patterns never take this kind:
 * the compiler fails closed for exe globs it cannot express as a prefix
 * and a suffix, since matching under exe_step's loop is too deep for the
 * verifier.
 *
 * The matcher is the two-pointer one: on a mismatch after a '*', that '*'
 * takes one more byte and matching resumes behind it. Each bpf_loop step
 * advances one pointer or backtracks once; a string of n bytes and a glob
 * of m bytes take at most (n + 1) * (m + 1) + m + 1 steps, at most 273 for
 * names and globs of 15 bytes. A match that does not finish within
 * GLOB_STEPS is no match.
 */
#ifndef BULWARK_GLOB_H
#define BULWARK_GLOB_H

#include "bulwark.h"

#define GLOB_BUF NAME_LEN     /* bytes of a glob or a name, a power of two */
#define GLOB_STEPS 512        /* >= (GLOB_BUF + 1) * (GLOB_BUF + 1) */
#define GLOB_NO_STAR GLOB_BUF

/* Per-CPU state of one match: copies of the glob and the string, indexed
 * with masks the verifier can bound, and the matcher's positions. The
 * positions live here, not on the stack, so that every step looks the same
 * to the verifier and it checks the step once. */
struct glob_buf {
	char pat[GLOB_BUF];
	char str[GLOB_BUF];
	__u32 pl, len; /* glob and string lengths */
	__u32 i, j;    /* next byte of the string and of the glob */
	__u32 star;    /* the last '*' seen in the glob, or GLOB_NO_STAR */
	__u32 mark;    /* where the string stood when that '*' was seen */
	__u32 done, ok;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct glob_buf);
} glob_bufs SEC(".maps");

/* glob_step is one step of the matcher (a bpf_loop callback; data is the
 * glob_buf). */
static long glob_step(__u32 k, void *data)
{
	struct glob_buf *g = *(struct glob_buf **)data;
	if (!g)
		return 1;
	__u32 i = g->i, j = g->j, pl = g->pl;
	char p = j < pl ? g->pat[j & (GLOB_BUF - 1)] : 0;
	if (i >= g->len) {
		/* The string is used up: only '*'s may remain. */
		if (j < pl && p == '*') {
			g->j = j + 1;
			return 0;
		}
		g->ok = j == pl;
		g->done = 1;
		return 1;
	}
	if (j < pl && p == '*') {
		g->star = j;
		g->mark = i;
		g->j = j + 1;
		return 0;
	}
	if (j < pl && (p == '?' || p == g->str[i & (GLOB_BUF - 1)])) {
		g->i = i + 1;
		g->j = j + 1;
		return 0;
	}
	if (g->star < GLOB_NO_STAR) {
		g->j = g->star + 1;
		g->i = ++g->mark;
		return 0;
	}
	g->done = 1;
	return 1;
}

/* glob_match reports whether the len bytes at str match the glob of pl
 * bytes at pat. */
static __always_inline bool glob_match(const void *pat, __u32 pl, const void *str, __u32 len)
{
	__u32 zero = 0;
	struct glob_buf *b = bpf_map_lookup_elem(&glob_bufs, &zero);
	if (!b || pl >= GLOB_BUF || len >= GLOB_BUF)
		return false;
	/* Mask after a barrier, so the compiler keeps the masks the
	 * verifier bounds the copies by. */
	barrier_var(pl);
	barrier_var(len);
	pl &= GLOB_BUF - 1;
	len &= GLOB_BUF - 1;
	if (bpf_probe_read_kernel(b->pat, pl, pat) || bpf_probe_read_kernel(b->str, len, str))
		return false;
	b->pl = pl;
	b->len = len;
	b->i = b->j = b->mark = b->done = b->ok = 0;
	b->star = GLOB_NO_STAR;
	bpf_loop(GLOB_STEPS, glob_step, &b, 0);
	return b->done && b->ok;
}

#endif
