/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * DNS names for dnsSelector egress rules: the DNS answers a workload
 * receives are parsed on its ingress path (network.bpf.c), before the
 * socket queues them, and each address an answer maps a name to becomes a
 * grant of that workload: (family, address) -> the name, its expiry and
 * the egress rules of the policy generation that name matches. A connect
 * or send to the address (check_conn, netcheck.h) then adds those rules to
 * the ones its address matches, while the grant lives, and reports the
 * name with the connection (EV_NAMED).
 *
 * What is parsed: a response (QR set, opcode QUERY) with one question,
 * from port 53 over UDP, or over TCP as one length-prefixed message that
 * fills the segment; at most DNS_MAX_RECORDS answer records, names with
 * compression pointers (each pointing below the last, at most
 * DNS_MAX_JUMPS), letters folded to lower case, labels of letters, digits,
 * '-' and '_' only. A record counts when its owner is the question or a
 * CNAME target met earlier in the answer (at most DNS_MAX_CHAIN names);
 * A and AAAA records of class IN grant their address to the question's
 * name. Whatever breaks these bounds grants nothing from that record on
 * and is counted (LOSS_DNS), never trusted.
 *
 * Only replies are parsed: a UDP datagram from an address and port 53 the
 * socket is connected to (read from the socket) or sent to (recorded at
 * sendmsg), both after the policy allowed the query; a TCP segment on a
 * connection the socket opened to port 53. The transaction id is not matched: the socket and
 * the peer's port are, and the resolver is one the policy lets the
 * workload query, so a dnsSelector rule trusts every resolver the policy
 * allows on port 53.
 *
 * Grants live for the record's TTL clamped to [dns_floor_s, dns_cap_s]
 * (engine_config). Each workload has its own LRU table of DNS_GRANTS, so a
 * flood of answers evicts only that workload's oldest grants. The engine
 * inserts empty tables into dns_grants ahead of need and arming names one
 * in the workload's entry (workload.grants): an insert into a map of maps
 * waits for an RCU grace period, too slow for a container's start. A
 * table is never handed to a second workload. An address holds the name
 * of the last answer that mapped it.
 */
#ifndef __BULWARK_DNS_H__
#define __BULWARK_DNS_H__

#include "bulwark.h"

#define DNS_PORT 53
#define DNS_MSG_MAX 2048 /* longer messages (from this many bytes) are counted, not parsed */
#define DNS_MSG_MASK (DNS_MSG_MAX - 1)
#define DNS_NAME_LEN 256 /* a name as text (at most 253 bytes), zero-padded */
#define DNS_NAME_MASK (DNS_NAME_LEN - 1)
#define DNS_NAME_MAX 253
#define DNS_NAME_STEPS 512 /* decode steps of one name: bytes, labels, pointers */
#define DNS_MAX_JUMPS 16
#define DNS_MAX_RECORDS 32
#define DNS_MAX_CHAIN 4 /* the question and the CNAME targets after it */
#define DNS_MAX_PATTERNS 256 /* dnsSelector names of one generation */
#define DNS_GRANTS 1024 /* grants of one workload */
#define DNS_FLOOR_S 60
#define DNS_CAP_S 3600

#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1

struct dns_grant_key {
	__u8 addr[16];
	__u32 family; /* AF_INET (v4-mapped AAAA answers too) or AF_INET6 */
};

struct dns_grant {
	__u64 expires_ns; /* CLOCK_MONOTONIC */
	__u64 name_hash;  /* FNV-1a of the name (1 for 0), as dnsNameHash in Go */
	__u64 rules;      /* egress rules of generation gen the name matches */
	__u32 gen;
	__u32 name_len;
	char name[DNS_NAME_LEN]; /* the question: lower case, no trailing dot */
};

/* Complete types in BTF for the inner map and for bpf2go -type. */
const struct dns_grant_key *unused_dns_grant_key __attribute__((unused));
const struct dns_grant *unused_dns_grant __attribute__((unused));

/* Tables of DNS grants, by GRANTS_KEY(workload.grants). Keys without
 * the bit are cgroup ids: the tables of workloads armed by an engine that
 * keyed them so, whose pinned programs still read them. */
#define GRANTS_KEY(n) ((1ULL << 63) | (__u64)(n))

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LRU_HASH);
		__uint(max_entries, DNS_GRANTS);
		__type(key, struct dns_grant_key);
		__type(value, struct dns_grant);
	});
} dns_grants SEC(".maps");

/* A dnsSelector name of an egress rule, keyed by (generation << 1, index);
 * indexes of a generation are dense from 0. */
struct dns_pattern {
	__u64 rules;      /* the rules naming it */
	__u16 prefix_len; /* exact: the name's length; glob: before the '*' */
	__u16 suffix_len; /* glob: after the '*' */
	__u8 kind;        /* PAT_EXACT or PAT_GLOB */
	__u8 pad[3];
	char bytes[DNS_NAME_LEN]; /* exact: the name, zero-padded; glob: prefix, then suffix */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rule_key);
	__type(value, struct dns_pattern);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dns_patterns SEC(".maps");

/* Decoding one name of the message into s->name. */
struct dns_dec {
	__u64 hash;
	__u32 pos;   /* next byte */
	__u32 lim;   /* a compression pointer must point below this */
	__u32 end;   /* the byte after the name where it began (0: not yet) */
	__u32 out;   /* bytes written to s->name */
	__u32 left;  /* bytes left in the current label */
	__u32 len;   /* message length */
	__u32 jumps;
	__s32 state; /* 0 going, 1 done, -1 malformed */
};

/* Walking the answer records of one message. */
struct dns_walk {
	__u64 table; /* the workload's key in dns_grants */
	__u64 qhash;
	__u64 rules;
	__u32 pos;
	__u32 len;
	__u32 records;
	__u32 nchain;
	__u32 gen;
	__u32 floor_s;
	__u32 cap_s;
	__u8 have_rules;
	__u8 bad;
	__u8 pad[2];
};

/* Per-CPU working memory of the parse. The loop states live here, not on
 * the stack: what the verifier reads from a map it does not track, so the
 * bpf_loop callbacks are checked once instead of once per value. */
struct dns_scratch {
	struct dns_dec dec;
	struct dns_walk walk;
	__u8 msg[DNS_MSG_MAX];
	char name[DNS_NAME_LEN];  /* the name being decoded */
	char mname[DNS_NAME_LEN]; /* the name being matched against the patterns */
	char chain[DNS_MAX_CHAIN][DNS_NAME_LEN];
	__u32 chain_len[DNS_MAX_CHAIN];
	struct dns_grant grant;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_scratch);
} dns_scratches SEC(".maps");

static __always_inline struct dns_scratch *dns_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&dns_scratches, &zero);
}

static __always_inline bool dns_same(const char *a, const char *b)
{
	/* Without branches, so the verifier walks it once. */
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	__u64 diff = 0;
	for (int i = 0; i < DNS_NAME_LEN / 8; i++)
		diff |= x[i] ^ y[i];
	return !diff;
}

/* Comparing a glob's prefix and suffix with s->mname, byte by byte. */
struct dns_glob {
	struct rule_key key; /* the pattern */
	__u32 pl;
	__u32 sl;
	__u32 len;
	__u32 differ;
};

/* dns_glob_step compares byte j of the glob's prefix, then its suffix (a
 * bpf_loop callback: the bounds stay unknown to the verifier, so it checks
 * the comparison once). */
static long dns_glob_step(__u32 j, void *data)
{
	struct dns_glob *x = data;
	struct dns_pattern *p = bpf_map_lookup_elem(&dns_patterns, &x->key);
	struct dns_scratch *s = dns_scratch();
	if (!p || !s || j >= x->pl + x->sl) {
		x->differ |= !p || !s;
		return 1;
	}
	__u32 at = j < x->pl ? j : x->len - x->sl + (j - x->pl);
	if (s->mname[at & DNS_NAME_MASK] != p->bytes[j & DNS_NAME_MASK]) {
		x->differ = 1;
		return 1;
	}
	return 0;
}

/* dns_pattern_matches tests s->mname (len bytes, zero-padded) against
 * pattern p, stored under key. */
static __always_inline bool dns_pattern_matches(const struct dns_pattern *p, const struct rule_key *key,
						const struct dns_scratch *s, __u32 len)
{
	__u32 pl = p->prefix_len, sl = p->suffix_len;
	if (p->kind == PAT_EXACT)
		return pl == len && dns_same(p->bytes, s->mname);
	if (p->kind != PAT_GLOB || pl + sl > len || len > DNS_NAME_MAX)
		return false;
	struct dns_glob x = { .key = *key, .pl = pl, .sl = sl, .len = len };
	bpf_loop(DNS_NAME_LEN, dns_glob_step, &x, 0);
	return !x.differ;
}

struct dns_match {
	__u64 rules;
	__u32 gen_dir;
	__u32 len;
};

/* dns_pattern_step tests pattern i of a generation (a bpf_loop callback). */
static long dns_pattern_step(__u32 i, void *data)
{
	struct dns_match *m = data;
	struct rule_key k = { .gen_dir = m->gen_dir, .index = i };
	struct dns_pattern *p = bpf_map_lookup_elem(&dns_patterns, &k);
	struct dns_scratch *s = dns_scratch();
	if (!p || !s)
		return 1;
	if (dns_pattern_matches(p, &k, s, m->len))
		m->rules |= p->rules;
	return 0;
}

/* dns_rules_of returns the egress rules of generation gen whose
 * dnsSelector names match s->mname (len bytes). */
static __always_inline __u64 dns_rules_of(__u32 gen, __u32 len)
{
	struct dns_match m = { .gen_dir = gen << 1, .len = len };
	bpf_loop(DNS_MAX_PATTERNS, dns_pattern_step, &m, 0);
	return m.rules;
}

/* dns_grants_of returns workload w's table of DNS grants, NULL when it
 * has none. */
static __always_inline void *dns_grants_of(const struct workload *w)
{
	if (!w->grants)
		return NULL;
	__u64 key = GRANTS_KEY(w->grants);
	return bpf_map_lookup_elem(&dns_grants, &key);
}

/* dns_grant_for returns workload w's live grant of c's destination
 * (egress), its rules those of generation gen; NULL when there is none. */
static __always_inline struct dns_grant *dns_grant_for(const struct conn *c, const struct workload *w, __u32 gen)
{
	void *grants = dns_grants_of(w);
	if (!grants)
		return NULL;
	struct dns_grant_key k = { .family = c->family };
	__builtin_memcpy(k.addr, c->daddr, 16);
	struct dns_grant *g = bpf_map_lookup_elem(grants, &k);
	if (!g || g->expires_ns <= bpf_ktime_get_ns())
		return NULL;
	if (g->gen != gen) {
		/* Granted under an earlier policy: match the name again. */
		struct dns_scratch *s = dns_scratch();
		if (!s)
			return NULL;
		__builtin_memcpy(s->mname, g->name, DNS_NAME_LEN);
		g->rules = dns_rules_of(gen, g->name_len);
		g->gen = gen;
	}
	return g;
}

static long dns_dec_step(__u32 i, void *data)
{
	struct dns_scratch *s = dns_scratch();
	if (!s)
		return 1;
	struct dns_dec *d = &s->dec;
	if (d->pos >= d->len || d->pos >= DNS_MSG_MAX)
		goto bad;
	__u8 b = s->msg[d->pos & DNS_MSG_MASK];
	if (d->left) {
		if (b >= 'A' && b <= 'Z')
			b += 'a' - 'A';
		if (!((b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == '-' || b == '_'))
			goto bad; /* a byte the text form could not tell apart */
		if (d->out >= DNS_NAME_MAX)
			goto bad;
		s->name[d->out & DNS_NAME_MASK] = b;
		d->hash = (d->hash ^ b) * FNV_PRIME;
		d->out++;
		d->pos++;
		d->left--;
		return 0;
	}
	if (!b) {
		if (!d->end)
			d->end = d->pos + 1;
		d->state = 1;
		return 1;
	}
	if ((b & 0xc0) == 0xc0) {
		if (d->pos + 1 >= d->len)
			goto bad;
		__u32 to = (__u32)(b & 0x3f) << 8 | s->msg[(d->pos + 1) & DNS_MSG_MASK];
		if (!d->end)
			d->end = d->pos + 2;
		/* Strictly backwards, so no chain of pointers loops. */
		if (to >= d->lim || ++d->jumps > DNS_MAX_JUMPS)
			goto bad;
		d->lim = to;
		d->pos = to;
		return 0;
	}
	if (b & 0xc0)
		goto bad; /* extended label types */
	if (d->out) {
		if (d->out >= DNS_NAME_MAX)
			goto bad;
		s->name[d->out & DNS_NAME_MASK] = '.';
		d->hash = (d->hash ^ '.') * FNV_PRIME;
		d->out++;
	}
	d->left = b;
	d->pos++;
	return 0;
bad:
	d->state = -1;
	return 1;
}

/* dns_decode decodes the name at pos into s->name (zero-padded) and
 * returns the offset after it, or -1 when it is malformed or too long. */
static __always_inline int dns_decode(struct dns_scratch *s, __u32 pos, __u32 len, __u32 *out, __u64 *hash)
{
	__builtin_memset(s->name, 0, DNS_NAME_LEN);
	struct dns_dec *d = &s->dec;
	__builtin_memset(d, 0, sizeof(*d));
	d->hash = FNV_OFFSET;
	d->pos = pos;
	d->lim = pos;
	d->len = len;
	bpf_loop(DNS_NAME_STEPS, dns_dec_step, NULL, 0);
	if (d->state != 1)
		return -1;
	*out = d->out;
	*hash = d->hash ? d->hash : 1;
	return d->end;
}

static __always_inline __u32 dns_u16(const struct dns_scratch *s, __u32 at)
{
	return (__u32)s->msg[at & DNS_MSG_MASK] << 8 | s->msg[(at + 1) & DNS_MSG_MASK];
}

/* dns_grant_addr grants the address of the A (n 4) or AAAA (n 16) record
 * data at rd to the question's name, for ttl seconds (clamped). */
static __always_inline void dns_grant_addr(struct dns_walk *w, struct dns_scratch *s, __u32 rd, __u32 n,
					   __u32 ttl)
{
	void *grants = bpf_map_lookup_elem(&dns_grants, &w->table);
	if (!grants)
		return;
	struct dns_grant_key k = { .family = n == 4 ? AF_INET : AF_INET6 };
	for (__u32 j = 0; j < 16; j++)
		if (j < n)
			k.addr[j] = s->msg[(rd + j) & DNS_MSG_MASK];
	if (n == 16 && unmap_v4(k.addr))
		k.family = AF_INET; /* connects to it are checked as IPv4 */
	__u64 secs = ttl < w->floor_s ? w->floor_s : ttl > w->cap_s ? w->cap_s : ttl;
	__u64 expires = bpf_ktime_get_ns() + secs * 1000000000ULL;
	/* The same name again under the same policy (a workload resolving
	 * what it resolved before): only the expiry changes. */
	struct dns_grant *g = bpf_map_lookup_elem(grants, &k);
	if (g && g->gen == w->gen && g->name_hash == w->qhash && g->name_len == s->chain_len[0] &&
	    dns_same(g->name, s->chain[0])) {
		g->expires_ns = expires;
		return;
	}
	if (!w->have_rules) {
		__builtin_memcpy(s->mname, s->chain[0], DNS_NAME_LEN);
		w->rules = dns_rules_of(w->gen, s->chain_len[0]);
		w->have_rules = 1;
	}
	g = &s->grant;
	g->expires_ns = expires;
	g->name_hash = w->qhash;
	g->rules = w->rules;
	g->gen = w->gen;
	g->name_len = s->chain_len[0];
	__builtin_memcpy(g->name, s->chain[0], DNS_NAME_LEN);
	bpf_map_update_elem(grants, &k, g, BPF_ANY);
}

/* dns_record_step reads answer record i (a bpf_loop callback). */
static long dns_record_step(__u32 i, void *data)
{
	struct dns_scratch *s = dns_scratch();
	if (!s)
		return 1;
	struct dns_walk *w = &s->walk;
	if (i >= w->records)
		return 1;
	__u32 nlen;
	__u64 h;
	int end = dns_decode(s, w->pos, w->len, &nlen, &h);
	if (end < 0)
		goto bad;
	__u32 p = end;
	if (p + 10 > w->len)
		goto bad;
	__u32 type = dns_u16(s, p), class = dns_u16(s, p + 2);
	__u32 ttl = dns_u16(s, p + 4) << 16 | dns_u16(s, p + 6);
	__u32 rdlen = dns_u16(s, p + 8);
	__u32 rd = p + 10;
	if (rd + rdlen > w->len)
		goto bad;
	w->pos = rd + rdlen;
	if (class != DNS_CLASS_IN)
		return 0;
	bool owned = false;
	for (int k = 0; k < DNS_MAX_CHAIN; k++) {
		if (k >= w->nchain)
			break;
		if (dns_same(s->name, s->chain[k])) {
			owned = true;
			break;
		}
	}
	if (!owned)
		return 0;
	if (type == DNS_TYPE_CNAME) {
		if (dns_decode(s, rd, w->len, &nlen, &h) < 0 || w->nchain >= DNS_MAX_CHAIN)
			goto bad;
		__u32 k = w->nchain & (DNS_MAX_CHAIN - 1);
		__builtin_memcpy(s->chain[k], s->name, DNS_NAME_LEN);
		s->chain_len[k] = nlen;
		w->nchain++;
	} else if ((type == DNS_TYPE_A && rdlen == 4) || (type == DNS_TYPE_AAAA && rdlen == 16)) {
		dns_grant_addr(w, s, rd, rdlen, ttl);
	}
	return 0;
bad:
	w->bad = 1;
	return 1;
}

/* dns_answer parses the DNS message of len bytes at off in skb, received
 * by workload w (cgroup cgid), and grants what it answers. */
static __always_inline void dns_answer(struct __sk_buff *skb, __u32 off, __u32 len, struct workload *w,
				       __u64 cgid)
{
	struct dns_scratch *s = dns_scratch();
	if (!s)
		return;
	if (len >= DNS_MSG_MAX)
		goto bad;
	asm volatile("" : "+r"(len)); /* keep the mask: the verifier needs the bound */
	len &= DNS_MSG_MASK;
	if (len < 12 || bpf_skb_load_bytes(skb, off, s->msg, len))
		goto bad;
	/* A response (QR) to a standard query (opcode 0), one question. */
	if (!(s->msg[2] & 0x80) || (s->msg[2] & 0x78) || dns_u16(s, 4) != 1)
		goto bad;
	__u32 an = dns_u16(s, 6);
	if (!an)
		return;
	__u32 qlen;
	__u64 qhash;
	int end = dns_decode(s, 12, len, &qlen, &qhash);
	if (end < 0 || end + 4 > len)
		goto bad;
	__builtin_memcpy(s->chain[0], s->name, DNS_NAME_LEN);
	s->chain_len[0] = qlen;
	__u32 zero = 0;
	struct engine_config *cfg = bpf_map_lookup_elem(&config, &zero);
	struct dns_walk *x = &s->walk;
	__builtin_memset(x, 0, sizeof(*x));
	x->table = GRANTS_KEY(w->grants);
	x->qhash = qhash;
	x->pos = end + 4;
	x->len = len;
	x->records = an < DNS_MAX_RECORDS ? an : DNS_MAX_RECORDS;
	x->nchain = 1;
	x->gen = w->gen;
	x->floor_s = cfg && cfg->dns_floor_s ? cfg->dns_floor_s : DNS_FLOOR_S;
	x->cap_s = cfg && cfg->dns_cap_s ? cfg->dns_cap_s : DNS_CAP_S;
	if (x->cap_s < x->floor_s)
		x->cap_s = x->floor_s;
	bpf_loop(DNS_MAX_RECORDS, dns_record_step, NULL, 0);
	if (!x->bad && an <= DNS_MAX_RECORDS)
		return;
bad:
	count_loss(cgid, LOSS_DNS);
}

#endif /* __BULWARK_DNS_H__ */
