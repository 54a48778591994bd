package policy

import (
	"fmt"
	"strings"
)

// Docker Hub's canonical registry name and the prefix of its official images.
const (
	defaultRegistry = "docker.io"
	officialPrefix  = "library/"
	defaultTag      = "latest"
)

// NormalizeImage returns the fully qualified form of an image reference, the
// way container runtimes resolve it: "nginx" becomes
// "docker.io/library/nginx:latest", "user/app" becomes
// "docker.io/user/app:latest", "index.docker.io/…" is spelled "docker.io/…",
// a registry host (one holding a '.' or ':' or named "localhost", port
// included) is kept, and a "@sha256:…" digest is kept. A reference with a
// digest and no tag gets no tag. The result is an error for a reference
// that is not a valid image reference.
func NormalizeImage(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("image reference is empty")
	}
	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest {
		if err := checkDigest(digest); err != nil {
			return "", fmt.Errorf("image reference %q: %w", ref, err)
		}
	}
	tag := ""
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, tag = name[:i], name[i+1:]
		if err := checkTag(tag); err != nil {
			return "", fmt.Errorf("image reference %q: %w", ref, err)
		}
	}
	domain, remainder := defaultRegistry, name
	if first, rest, ok := strings.Cut(name, "/"); ok &&
		(strings.ContainsAny(first, ".:") || first == "localhost" || first != strings.ToLower(first)) {
		domain, remainder = first, rest
		if err := checkDomain(domain); err != nil {
			return "", fmt.Errorf("image reference %q: %w", ref, err)
		}
	}
	if domain == "index.docker.io" {
		domain = defaultRegistry
	}
	if domain == defaultRegistry && !strings.Contains(remainder, "/") {
		remainder = officialPrefix + remainder
	}
	if err := checkPath(remainder); err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	out := domain + "/" + remainder
	if tag == "" && !hasDigest {
		tag = defaultTag
	}
	if tag != "" {
		out += ":" + tag
	}
	if hasDigest {
		out += "@" + digest
	}
	return out, nil
}

// checkPath checks the repository path: '/'-separated components of lower
// case letters and digits joined by '.', '_', "__" or runs of '-'.
func checkPath(p string) error {
	if p == "" {
		return fmt.Errorf("repository name is empty")
	}
	for _, comp := range strings.Split(p, "/") {
		if comp == "" {
			return fmt.Errorf("empty path component in %q", p)
		}
		if !isAlnumLower(comp[0]) || !isAlnumLower(comp[len(comp)-1]) {
			return fmt.Errorf("path component %q must start and end with a lower case letter or digit", comp)
		}
		for i := 0; i < len(comp); {
			if isAlnumLower(comp[i]) {
				i++
				continue
			}
			j := i
			for j < len(comp) && !isAlnumLower(comp[j]) {
				j++
			}
			if sep := comp[i:j]; sep != "." && sep != "_" && sep != "__" && strings.Trim(sep, "-") != "" {
				return fmt.Errorf("path component %q has the bad separator %q", comp, sep)
			}
			i = j
		}
	}
	return nil
}

func isAlnumLower(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
}

func isAlnum(c byte) bool {
	return isAlnumLower(c) || c >= 'A' && c <= 'Z'
}

// checkTag checks a tag: a word character followed by up to 127 word
// characters, '.' or '-'.
func checkTag(tag string) error {
	if tag == "" || len(tag) > 128 {
		return fmt.Errorf("tag %q must be 1 to 128 characters", tag)
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if isAlnum(c) || c == '_' || (i > 0 && (c == '.' || c == '-')) {
			continue
		}
		return fmt.Errorf("tag %q holds %q", tag, c)
	}
	return nil
}

// checkDomain checks a registry host with an optional port.
func checkDomain(domain string) error {
	host, port, hasPort := strings.Cut(domain, ":")
	if host == "" {
		return fmt.Errorf("registry %q has no host", domain)
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("registry host %q is not a host name", host)
		}
		for i := 0; i < len(label); i++ {
			if !isAlnum(label[i]) && label[i] != '-' {
				return fmt.Errorf("registry host %q is not a host name", host)
			}
		}
	}
	if hasPort {
		if port == "" || len(port) > 5 {
			return fmt.Errorf("registry %q has a bad port", domain)
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return fmt.Errorf("registry %q has a bad port", domain)
			}
		}
	}
	return nil
}

// checkDigest checks "algorithm:hex" with at least 32 hex digits.
func checkDigest(d string) error {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg == "" {
		return fmt.Errorf("digest %q is not algorithm:hex", d)
	}
	for i := 0; i < len(alg); i++ {
		if !isAlnum(alg[i]) && (i == 0 || !strings.ContainsRune("+.-_", rune(alg[i]))) {
			return fmt.Errorf("digest algorithm %q is not valid", alg)
		}
	}
	if len(hex) < 32 {
		return fmt.Errorf("digest %q is too short", d)
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return fmt.Errorf("digest %q is not hexadecimal", d)
		}
	}
	return nil
}
