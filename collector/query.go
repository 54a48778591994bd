package collector

import (
	"errors"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// matcher applies a Filter at one point in time.
type matcher struct {
	f      Filter
	cutoff time.Time
}

func newMatcher(f Filter, now time.Time) matcher {
	m := matcher{f: f}
	if f.Since > 0 {
		m.cutoff = now.Add(-f.Since)
	}
	return m
}

func (m matcher) recent(lastSeen time.Time) bool {
	return m.cutoff.IsZero() || !lastSeen.Before(m.cutoff)
}

// identity checks the image, service and namespace filters against a
// workload's identity.
func (m matcher) identity(image, service, namespace string) bool {
	if m.f.Image != "" && !imageFilterMatches(m.f.Image, image) {
		return false
	}
	if m.f.Service != "" {
		sel := policy.Spec{ServiceSelector: &policy.ServiceSelector{Cgroup: m.f.Service}}
		if !sel.Selects(policy.Identity{ServiceCgroup: service}) {
			return false
		}
	}
	return m.f.Namespace == "" || nameMatches(m.f.Namespace, namespace)
}

// imageFilterMatches matches an image filter as a policy's
// containerSelector.image does; a plain reference without tag or digest
// also matches every tag of its repository ("nginx" matches
// "docker.io/library/nginx:1.25").
func imageFilterMatches(pattern, image string) bool {
	if image == "" {
		return false
	}
	sel := policy.Spec{ContainerSelector: &policy.ContainerSelector{Image: pattern}}
	if sel.Selects(policy.Identity{Image: image}) {
		return true
	}
	if strings.ContainsAny(pattern, "*?[@") || strings.Contains(path.Base(pattern), ":") {
		return false
	}
	want, err1 := policy.NormalizeImage(pattern)
	got, err2 := policy.NormalizeImage(image)
	return err1 == nil && err2 == nil && policy.ImageRepository(want) == policy.ImageRepository(got)
}

// nameMatches matches a name against a name or glob.
func nameMatches(pattern, name string) bool {
	if ok, err := path.Match(pattern, name); err == nil && ok {
		return true
	}
	return pattern == name
}

// workloads lists the workloads matching f, by namespace and name.
func (s *store) workloads(f Filter, now time.Time) ([]Workload, error) {
	m := newMatcher(f, now)
	out, err := scanJSON(s, bucketWorkloads, "workload", func(wl *Workload) bool {
		return m.recent(wl.LastSeen) && m.identity(wl.Image, wl.ServiceCgroup, wl.Namespace) &&
			(f.Policy == "" || nameMatches(f.Policy, wl.PolicyName))
	})
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.ContainerName != b.ContainerName {
			return a.ContainerName < b.ContainerName
		}
		return a.Started.Before(b.Started)
	})
	return out, err
}

// fingerprintGroups lists the fingerprints matching f, grouped by image
// or service, groups by key and instances by first sight.
func (s *store) fingerprintGroups(f Filter, now time.Time) ([]FingerprintGroup, error) {
	m := newMatcher(f, now)
	var pols []StoredPolicy
	if f.Policy != "" {
		var err error
		if pols, err = s.policies(Filter{Policy: f.Policy}, now); err != nil {
			return nil, err
		}
	}
	instances, err := scanJSON(s, bucketFingerprints, "fingerprint", func(fi *FingerprintInstance) bool {
		fp := &fi.Fingerprint
		return m.recent(fi.LastSeen) && m.identity(fingerprintImage(fp), fingerprintCgroup(fp), fp.Metadata.Namespace) &&
			(f.Policy == "" || selectedByAny(pols, fp))
	})
	// Keys start with the group, so a group's instances come together.
	out := []FingerprintGroup{}
	for _, fi := range instances {
		if n := len(out); n == 0 || out[n-1].Key != fi.Group {
			g := FingerprintGroup{Key: fi.Group, Type: fi.Fingerprint.Metadata.Type, FirstSeen: fi.FirstSeen, LastSeen: fi.LastSeen}
			if img, ok := strings.CutPrefix(fi.Group, "image:"); ok {
				g.Image = img
			} else if svc, ok := strings.CutPrefix(fi.Group, "service:"); ok {
				g.Service = svc
			}
			out = append(out, g)
		}
		g := &out[len(out)-1]
		if fi.FirstSeen.Before(g.FirstSeen) {
			g.FirstSeen = fi.FirstSeen
		}
		if fi.LastSeen.After(g.LastSeen) {
			g.LastSeen = fi.LastSeen
		}
		g.Instances = append(g.Instances, fi)
	}
	for i := range out {
		sort.SliceStable(out[i].Instances, func(a, b int) bool {
			return out[i].Instances[a].FirstSeen.Before(out[i].Instances[b].FirstSeen)
		})
	}
	return out, err
}

// selectedByAny reports whether one of the policies selects the workload a
// fingerprint describes.
func selectedByAny(pols []StoredPolicy, fp *policy.Fingerprint) bool {
	md := &fp.Metadata
	id := policy.Identity{
		Type: md.Type, Image: fingerprintImage(fp), ImageID: md.ImageID, ContainerName: md.ContainerName,
		ContainerID: md.ContainerID, PodName: md.PodName, PodUID: md.PodUID, PodLabels: md.PodLabels,
		Namespace: md.Namespace, NamespaceLabels: md.NamespaceLabels, ServiceCgroup: fingerprintCgroup(fp),
		ServiceName: md.ServiceName, Hostname: md.Hostname,
	}
	if id.Type == "" {
		id.Type = policy.TypeContainer
		if id.ServiceCgroup != "" {
			id.Type = policy.TypeLinuxService
		}
	}
	for i := range pols {
		if len(policy.Select([]*policy.WorkloadPolicy{&pols[i].Policy}, id)) > 0 {
			return true
		}
	}
	return false
}

// policies lists the policies matching f, by name and agent. The image,
// service and namespace filters keep the policies whose selectors select
// such a workload.
func (s *store) policies(f Filter, now time.Time) ([]StoredPolicy, error) {
	m := newMatcher(f, now)
	out, err := scanJSON(s, bucketPolicies, "policy", func(sp *StoredPolicy) bool {
		spec := &sp.Policy.Spec
		switch {
		case !m.recent(sp.LastSeen), f.Policy != "" && !nameMatches(f.Policy, sp.Policy.Metadata.Name):
			return false
		case f.Image != "" && (spec.ContainerSelector == nil || !selectorImageMatches(spec.ContainerSelector.Image, f.Image)):
			return false
		case f.Service != "" && (spec.ServiceSelector == nil ||
			!(&policy.Spec{ServiceSelector: &policy.ServiceSelector{Cgroup: spec.ServiceSelector.Cgroup}}).Selects(policy.Identity{ServiceCgroup: f.Service})):
			return false
		case f.Namespace != "" && spec.NamespaceSelector != nil &&
			!(&policy.Spec{NamespaceSelector: spec.NamespaceSelector}).Selects(policy.Identity{Namespace: f.Namespace}):
			return false
		}
		return true
	})
	sort.SliceStable(out, func(i, j int) bool {
		if a, b := out[i].Policy.Metadata.Name, out[j].Policy.Metadata.Name; a != b {
			return a < b
		}
		return out[i].Agent < out[j].Agent
	})
	return out, err
}

// selectorImageMatches reports whether a policy's image selector and an
// image filter meet: the selector selects the filter's image, or the
// filter matches the selector's text.
func selectorImageMatches(selector, filter string) bool {
	if selector == "" {
		return true
	}
	sel := policy.Spec{ContainerSelector: &policy.ContainerSelector{Image: selector}}
	return sel.Selects(policy.Identity{Image: filter}) || imageFilterMatches(filter, selector)
}

// deviations lists the deviations matching f, oldest first.
func (s *store) deviations(f Filter, now time.Time) ([]StoredDeviation, error) {
	m := newMatcher(f, now)
	out, err := scanJSON(s, bucketDeviations, "deviation", func(sd *StoredDeviation) bool {
		md := &sd.Deviation.Metadata
		return m.recent(sd.LastSeen) && m.identity(md.Image, md.Cgroup, md.Namespace) &&
			(f.Policy == "" || nameMatches(f.Policy, md.PolicyName))
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].FirstSeen.Before(out[j].FirstSeen) })
	return out, err
}

// errFlagsFilter refuses a filter flags cannot be matched against: the
// asker's mistake, not the store's.
var errFlagsFilter = errors.New("flags can be filtered by policy and age only")

// flags lists the flags matching f, oldest first. Flags carry no workload
// identity, so only the policy and since filters apply to them.
func (s *store) flags(f Filter, now time.Time) ([]StoredFlag, error) {
	if f.Image != "" || f.Service != "" || f.Namespace != "" {
		return nil, errFlagsFilter
	}
	m := newMatcher(f, now)
	out, err := scanJSON(s, bucketFlags, "flag", func(sf *StoredFlag) bool {
		return m.recent(sf.LastSeen) && (f.Policy == "" || nameMatches(f.Policy, sf.Flag.Metadata.PolicyName))
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].LastSeen.Before(out[j].LastSeen) })
	return out, err
}
