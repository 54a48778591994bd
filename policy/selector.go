package policy

import (
	"path"
	"sort"
	"strings"
)

// Identity is everything known about a workload instance: what selectors
// are matched against.
type Identity struct {
	// Type is TypeContainer or TypeLinuxService.
	Type string
	// Image is the image reference the container was created from, as the
	// runtime reports it (for example "nginx" or "registry:5000/app:v1").
	Image string
	// ImageID is the image's content digest ("sha256:…", with or without
	// the algorithm prefix).
	ImageID       string
	ContainerName string
	ContainerID   string
	PodName       string
	PodUID        string
	PodLabels     map[string]string
	Namespace     string
	// NamespaceLabels are the namespace's labels; the label
	// "kubernetes.io/metadata.name" is always implied from Namespace.
	NamespaceLabels map[string]string
	// ServiceCgroup is the service's cgroup in Spyderbat's form, for
	// example "systemd:/system.slice/nginx.service".
	ServiceCgroup string
	// ServiceName is the systemd unit name, for example "nginx.service".
	ServiceName string
	Hostname    string
	MachineUID  string
}

// NamespaceNameLabel is the label Kubernetes puts on every namespace, holding
// its name.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// Selects reports whether every selector present in s matches id. A spec
// with no selectors selects everything; Select additionally requires the
// selector that the workload type needs.
func (s *Spec) Selects(id Identity) bool {
	if s.ContainerSelector != nil && !s.ContainerSelector.matches(id) {
		return false
	}
	if s.ServiceSelector != nil && !s.ServiceSelector.matches(id) {
		return false
	}
	if s.MachineSelector != nil && !s.MachineSelector.matches(id) {
		return false
	}
	if s.PodSelector != nil && !s.PodSelector.matches(id.PodLabels) {
		return false
	}
	if s.NamespaceSelector != nil && !s.NamespaceSelector.matches(NamespaceLabels(id)) {
		return false
	}
	return true
}

// Select returns the enabled policies of id's type that select id, ordered
// by name. A container policy without a containerSelector, or a service
// policy without a serviceSelector, selects nothing.
func Select(policies []*WorkloadPolicy, id Identity) []*WorkloadPolicy {
	var out []*WorkloadPolicy
	for _, p := range policies {
		if p == nil || p.Metadata.Type != id.Type {
			continue
		}
		if p.Spec.Enabled != nil && !*p.Spec.Enabled {
			continue
		}
		switch id.Type {
		case TypeContainer:
			if p.Spec.ContainerSelector == nil {
				continue
			}
		case TypeLinuxService:
			if p.Spec.ServiceSelector == nil {
				continue
			}
		default:
			continue
		}
		if p.Spec.Selects(id) {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Metadata.Name < out[j].Metadata.Name })
	return out
}

// NamespaceLabels returns id's namespace labels with the implied
// kubernetes.io/metadata.name label added.
func NamespaceLabels(id Identity) map[string]string {
	labels := make(map[string]string, len(id.NamespaceLabels)+1)
	for k, v := range id.NamespaceLabels {
		labels[k] = v
	}
	if id.Namespace != "" {
		labels[NamespaceNameLabel] = id.Namespace
	}
	return labels
}

func (c *ContainerSelector) matches(id Identity) bool {
	if c.Image != "" && !imageMatches(c.Image, id.Image) {
		return false
	}
	if c.ImageID != "" && !imageIDMatches(c.ImageID, id.ImageID) {
		return false
	}
	if c.ContainerName != "" && !globMatch(c.ContainerName, id.ContainerName) {
		return false
	}
	if c.ContainerID != "" && !containerIDMatches(c.ContainerID, id.ContainerID) {
		return false
	}
	return fieldsMatch(c.MatchFields, c.MatchFieldsExpressions, func(field string) []string {
		switch field {
		case "image":
			return []string{id.Image}
		case "imageID":
			return []string{id.ImageID}
		case "containerName":
			return []string{id.ContainerName}
		case "containerID":
			return []string{id.ContainerID}
		}
		return nil
	})
}

func (s *ServiceSelector) matches(id Identity) bool {
	if s.Cgroup != "" && !cgroupMatches(s.Cgroup, id.ServiceCgroup) {
		return false
	}
	if s.Name != "" && !serviceNameMatches(s.Name, id.ServiceName) {
		return false
	}
	return fieldsMatch(s.MatchFields, s.MatchFieldsExpressions, func(field string) []string {
		switch field {
		case "cgroup":
			return []string{id.ServiceCgroup}
		case "name":
			return []string{id.ServiceName}
		}
		return nil
	})
}

func (m *MachineSelector) matches(id Identity) bool {
	if len(m.Hostname) > 0 && !anyGlobMatches(m.Hostname, id.Hostname) {
		return false
	}
	if len(m.MachineUID) > 0 && !anyGlobMatches(m.MachineUID, id.MachineUID) {
		return false
	}
	return fieldsMatch(m.MatchFields, m.MatchFieldsExpressions, func(field string) []string {
		switch field {
		case "hostname":
			return []string{id.Hostname}
		case "uid", "machineUID":
			return []string{id.MachineUID}
		}
		return nil
	})
}

// Matches reports whether a process matches the selector: its name
// (comm), executable path and effective user name each match one of the
// selector's globs for that field (none: any), and matchFields and
// matchFieldsExpressions hold over the fields "name", "exe" and "euser".
// The globs are those of every selector ('*' crosses '/').
func (s *ProcessSelector) Matches(name, exe, euser string) bool {
	for _, f := range []struct {
		globs StringList
		value string
	}{{s.Name, name}, {s.Exe, exe}, {s.Euser, euser}} {
		if len(f.globs) > 0 && !anyGlobMatches(f.globs, f.value) {
			return false
		}
	}
	return fieldsMatch(s.MatchFields, s.MatchFieldsExpressions, func(field string) []string {
		switch field {
		case "name":
			return []string{name}
		case "exe":
			return []string{exe}
		case "euser":
			return []string{euser}
		}
		return nil
	})
}

// matches applies Kubernetes label selector semantics: every matchLabels
// pair and every matchExpressions requirement must hold. Values may be
// globs.
func (l *LabelSelector) matches(labels map[string]string) bool {
	for k, v := range l.MatchLabels {
		got, ok := labels[k]
		if !ok || !globMatch(v, got) {
			return false
		}
	}
	for _, r := range l.MatchExpressions {
		got, ok := labels[r.Key]
		if !requirementHolds(r, got, ok) {
			return false
		}
	}
	return true
}

// fieldsMatch evaluates matchFields and matchFieldsExpressions against the
// values value returns for a field name (nil for a field the selector does
// not know, which never matches).
func fieldsMatch(fields map[string]string, exprs []Requirement, value func(string) []string) bool {
	for k, pattern := range fields {
		vals := value(k)
		if vals == nil || vals[0] == "" || !globMatch(pattern, vals[0]) {
			return false
		}
	}
	for _, r := range exprs {
		vals := value(r.Key)
		present := vals != nil && vals[0] != ""
		got := ""
		if present {
			got = vals[0]
		}
		if !requirementHolds(r, got, present) {
			return false
		}
	}
	return true
}

// requirementHolds evaluates one In/NotIn/Exists/DoesNotExist requirement
// against a value that is present or not. An unknown operator never holds.
func requirementHolds(r Requirement, got string, present bool) bool {
	switch r.Operator {
	case "Exists":
		return present
	case "DoesNotExist":
		return !present
	case "In":
		return present && anyGlobMatches(r.Values, got)
	case "NotIn":
		return !present || !anyGlobMatches(r.Values, got)
	}
	return false
}

// imageMatches matches an image selector against a workload's image
// reference. A plain selector is normalised and compared with the
// normalised reference (a selector with a digest and no tag matches that
// digest under any tag); a glob is matched against both the reference as
// given and its normalised form.
func imageMatches(pattern, image string) bool {
	if image == "" {
		return false
	}
	norm, err := NormalizeImage(image)
	if err != nil {
		norm = image
	}
	if isGlob(pattern) {
		return globMatch(pattern, image) || globMatch(pattern, norm)
	}
	want, err := NormalizeImage(pattern)
	if err != nil {
		return pattern == image
	}
	if name, digest, ok := strings.Cut(want, "@"); ok && ImageRepository(name) == name {
		// A digest without a tag pins the content whatever the tag.
		_, got, _ := strings.Cut(norm, "@")
		return got == digest && ImageRepository(norm) == name
	}
	return want == norm
}

// imageIDMatches compares image IDs with and without their "sha256:"
// prefix.
func imageIDMatches(pattern, id string) bool {
	if id == "" {
		return false
	}
	return globMatch(pattern, id) ||
		globMatch(strings.TrimPrefix(pattern, "sha256:"), strings.TrimPrefix(id, "sha256:"))
}

// containerIDMatches matches a container ID selector; a selector may be
// written with a runtime prefix such as "containerd://".
func containerIDMatches(pattern, id string) bool {
	if id == "" {
		return false
	}
	return globMatch(pattern, id) || globMatch(trimScheme(pattern), trimScheme(id))
}

func trimScheme(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		return s[i+3:]
	}
	return s
}

// cgroupMatches matches a serviceSelector cgroup; the "systemd:" prefix of
// Spyderbat's form is optional on either side.
func cgroupMatches(pattern, cgroup string) bool {
	if cgroup == "" {
		return false
	}
	return globMatch(pattern, cgroup) ||
		globMatch(strings.TrimPrefix(pattern, "systemd:"), strings.TrimPrefix(cgroup, "systemd:"))
}

// serviceNameMatches matches a unit name selector; "nginx" selects
// "nginx.service".
func serviceNameMatches(pattern, name string) bool {
	if name == "" {
		return false
	}
	return globMatch(pattern, name) || globMatch(pattern, strings.TrimSuffix(name, ".service"))
}

func anyGlobMatches(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

// isGlob reports whether s holds a glob metacharacter.
func isGlob(s string) bool {
	return strings.ContainsAny(s, "*?[")
}

// globMatch reports whether name matches pattern with fnmatch semantics, as
// Spyderbat's selectors do: '*' matches any run of characters including
// '/', '?' any one character, "[...]" a set ("[!...]" or "[^...]" its
// complement, "a-z" ranges). A '[' without a closing ']' is literal.
// Matching is on bytes and case-sensitive.
func globMatch(pattern, name string) bool {
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(name) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				p++
				n++
				continue
			case '[':
				if ok, width, valid := matchClass(pattern[p:], name[n]); valid {
					if ok {
						p += width
						n++
						continue
					}
				} else if name[n] == '[' {
					p++
					n++
					continue
				}
			default:
				if c == name[n] {
					p++
					n++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		p, n = starP+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// matchClass matches c against the bracket expression at the start of
// class. It returns whether c is in the set, the expression's width, and
// whether class starts with a complete bracket expression at all.
func matchClass(class string, c byte) (match bool, width int, valid bool) {
	i := 1
	negate := false
	if i < len(class) && (class[i] == '!' || class[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(class) {
		if class[i] == ']' && !first {
			return match != negate, i + 1, true
		}
		first = false
		lo := class[i]
		hi := lo
		if i+2 < len(class) && class[i+1] == '-' && class[i+2] != ']' {
			hi = class[i+2]
			i += 3
		} else {
			i++
		}
		if lo <= c && c <= hi {
			match = true
		}
	}
	return false, 0, false
}

// exeMatches reports whether an exe pattern of a process node matches exe:
// exactly, as a glob, or by the glob of its base name (so /usr/bin/python3
// matches /usr/local/bin/python3), as Spyderbat's merge does.
func exeMatches(pattern, exe string) bool {
	return pattern == exe || globMatch(pattern, exe) || globMatch(path.Base(pattern), path.Base(exe))
}
