package bpf

import (
	"fmt"
	"hash/fnv"
	"strings"
)

// Kernel limits of DNS names, mirrored from include/dns.h.
const (
	dnsNameLen     = 256
	dnsNameMax     = 253
	dnsMaxPatterns = 256
)

// dnsPattern compiles one dnsSelector name of egress rule (index rule) to
// the kernel's form: an exact name, or a glob of one '*' (prefix and
// suffix, "*" matching any bytes, dots included, as policy merges read
// it), compared with the lower-case name without its trailing dot. Other
// globs are *uncheckable: the caller leaves them out (nothing matches).
func dnsPattern(name string, rule int, field string) (networkDnsPattern, error) {
	var p networkDnsPattern
	v := strings.TrimSuffix(strings.ToLower(name), ".")
	if v == "" {
		return p, fmt.Errorf("%s: empty name", field)
	}
	if strings.ContainsAny(v, "?[") || strings.Count(v, "*") > 1 {
		return p, &uncheckable{fmt.Sprintf("%s: %q: the kernel matches exact names and globs of one '*'", field, name)}
	}
	if len(v) > dnsNameMax {
		return p, fmt.Errorf("%s: %q is longer than %d bytes", field, name, dnsNameMax)
	}
	p.Rules = 1 << rule
	pre, suf, glob := strings.Cut(v, "*")
	p.Kind = patExact
	if glob {
		p.Kind = patGlob
		p.SuffixLen = uint16(len(suf))
	}
	p.PrefixLen = uint16(len(pre))
	for i := range len(pre) + len(suf) {
		c := pre + suf
		p.Bytes[i] = int8(c[i])
	}
	return p, nil
}

// dnsNameHash is the kernel's hash of a granted name (dns_grant.name_hash,
// in the seen and deviation keys): FNV-1a, 1 in place of 0.
func dnsNameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	if v := h.Sum64(); v != 0 {
		return v
	}
	return 1
}
