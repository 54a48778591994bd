package policy

import (
	"reflect"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"", "", true},
		{"", "a", false},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"*", "", true},
		{"*", "a/b/c", true},
		{"docker.io/*", "docker.io/library/nginx:latest", true},
		{"*nginx*", "docker.io/library/nginx:latest", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"python?", "python3", true},
		{"python?", "python", false},
		{"python[23]", "python3", true},
		{"python[23]", "python4", false},
		{"python[0-9]", "python7", true},
		{"python[!0-9]", "python7", false},
		{"python[!0-9]", "pythonx", true},
		{"python[^0-9]", "pythonx", true},
		{"[]]", "]", true},
		{"[!]]", "]", false},
		{"a[-]b", "a-b", true},
		{"a[", "a[", true},
		{"a[b", "ab", false},
		{"**", "x", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"nginx", "NGINX", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestExeMatches(t *testing.T) {
	tests := []struct {
		pattern, exe string
		want         bool
	}{
		{"/usr/sbin/nginx", "/usr/sbin/nginx", true},
		{"/usr/bin/python3", "/usr/local/bin/python3", true},
		{"/usr/bin/python*", "/usr/bin/python3.11", true},
		{"/usr/bin/*", "/usr/bin/x/y", true},
		{"/usr/bin/sh", "/usr/bin/bash", false},
		{"/bin/ba?h", "/usr/bin/bash", true},
	}
	for _, tt := range tests {
		if got := exeMatches(tt.pattern, tt.exe); got != tt.want {
			t.Errorf("exeMatches(%q, %q) = %v, want %v", tt.pattern, tt.exe, got, tt.want)
		}
	}
}

func TestSpecSelects(t *testing.T) {
	const id256 = "sha256:10d1f5b58f74683ad34eb29287e07dab1e90f10af243f151bb50aa5dbb4d62ee"
	nginx := Identity{
		Type:            TypeContainer,
		Image:           "nginx",
		ImageID:         id256,
		ContainerName:   "latencytest2",
		ContainerID:     "0123456789abcdef",
		PodName:         "latencytest2-abc",
		PodLabels:       map[string]string{"run": "latencytest2", "tier": "web"},
		Namespace:       "default",
		NamespaceLabels: map[string]string{"env": "prod"},
		Hostname:        "node-1.example.com",
		MachineUID:      "mach:abc",
	}
	service := Identity{
		Type:          TypeLinuxService,
		ServiceCgroup: "systemd:/system.slice/chronyd.service",
		ServiceName:   "chronyd.service",
		Hostname:      "node-2",
	}
	tests := []struct {
		name string
		spec Spec
		id   Identity
		want bool
	}{
		{"no selectors", Spec{}, nginx, true},
		{"image short form", Spec{ContainerSelector: &ContainerSelector{Image: "nginx"}}, nginx, true},
		{"image normalised selector", Spec{ContainerSelector: &ContainerSelector{Image: "docker.io/library/nginx:latest"}}, nginx, true},
		{"image other tag", Spec{ContainerSelector: &ContainerSelector{Image: "nginx:1.25"}}, nginx, false},
		{"image glob on normalised", Spec{ContainerSelector: &ContainerSelector{Image: "docker.io/library/nginx:*"}}, nginx, true},
		{"image glob on raw", Spec{ContainerSelector: &ContainerSelector{Image: "ngin?"}}, nginx, true},
		{"image glob crosses slash", Spec{ContainerSelector: &ContainerSelector{Image: "docker.io/*"}}, nginx, true},
		{"image glob mismatch", Spec{ContainerSelector: &ContainerSelector{Image: "*redis*"}}, nginx, false},
		{"image registry with port", Spec{ContainerSelector: &ContainerSelector{Image: "registry:5000/app"}},
			Identity{Type: TypeContainer, Image: "registry:5000/app:latest"}, true},
		{"image registry port differs", Spec{ContainerSelector: &ContainerSelector{Image: "registry:5000/app"}},
			Identity{Type: TypeContainer, Image: "registry:5001/app:latest"}, false},
		{"image digest", Spec{ContainerSelector: &ContainerSelector{Image: "nginx@" + id256}},
			Identity{Type: TypeContainer, Image: "docker.io/library/nginx@" + id256}, true},
		{"image digest vs tag", Spec{ContainerSelector: &ContainerSelector{Image: "nginx@" + id256}}, nginx, false},
		{"image digest under a tag", Spec{ContainerSelector: &ContainerSelector{Image: "nginx@" + id256}},
			Identity{Type: TypeContainer, Image: "nginx:1.25@" + id256}, true},
		{"image digest other repository", Spec{ContainerSelector: &ContainerSelector{Image: "nginx@" + id256}},
			Identity{Type: TypeContainer, Image: "redis@" + id256}, false},
		{"image tag and digest vs other tag", Spec{ContainerSelector: &ContainerSelector{Image: "nginx:1.25@" + id256}},
			Identity{Type: TypeContainer, Image: "nginx:1.26@" + id256}, false},
		{"image no identity image", Spec{ContainerSelector: &ContainerSelector{Image: "*"}}, service, false},
		{"imageID with prefix", Spec{ContainerSelector: &ContainerSelector{ImageID: id256}}, nginx, true},
		{"imageID without prefix", Spec{ContainerSelector: &ContainerSelector{ImageID: id256[7:]}}, nginx, true},
		{"imageID identity without prefix", Spec{ContainerSelector: &ContainerSelector{ImageID: id256}},
			Identity{Type: TypeContainer, ImageID: id256[7:]}, true},
		{"imageID glob", Spec{ContainerSelector: &ContainerSelector{ImageID: "10d1f5*"}}, nginx, true},
		{"imageID differs", Spec{ContainerSelector: &ContainerSelector{ImageID: "sha256:ffff"}}, nginx, false},
		{"containerName glob", Spec{ContainerSelector: &ContainerSelector{ContainerName: "latency*"}}, nginx, true},
		{"containerName differs", Spec{ContainerSelector: &ContainerSelector{ContainerName: "other"}}, nginx, false},
		{"containerID prefix", Spec{ContainerSelector: &ContainerSelector{ContainerID: "containerd://0123*"}}, nginx, true},
		{"all container fields AND", Spec{ContainerSelector: &ContainerSelector{Image: "nginx", ContainerName: "other"}}, nginx, false},
		{"matchFields", Spec{ContainerSelector: &ContainerSelector{MatchFields: map[string]string{"containerName": "latency*"}}}, nginx, true},
		{"matchFields unknown field", Spec{ContainerSelector: &ContainerSelector{MatchFields: map[string]string{"bogus": "*"}}}, nginx, false},
		{"matchFieldsExpressions In", Spec{ContainerSelector: &ContainerSelector{MatchFieldsExpressions: []Requirement{
			{Key: "image", Operator: "In", Values: []string{"redis", "ngin*"}}}}}, nginx, true},
		{"matchFieldsExpressions NotIn", Spec{ContainerSelector: &ContainerSelector{MatchFieldsExpressions: []Requirement{
			{Key: "containerName", Operator: "NotIn", Values: []string{"latency*"}}}}}, nginx, false},
		{"matchFieldsExpressions DoesNotExist", Spec{ContainerSelector: &ContainerSelector{MatchFieldsExpressions: []Requirement{
			{Key: "containerName", Operator: "DoesNotExist"}}}}, Identity{Type: TypeContainer, Image: "x"}, true},
		{"pod matchLabels", Spec{PodSelector: &LabelSelector{MatchLabels: map[string]string{"run": "latencytest2"}}}, nginx, true},
		{"pod matchLabels glob", Spec{PodSelector: &LabelSelector{MatchLabels: map[string]string{"run": "latency*"}}}, nginx, true},
		{"pod matchLabels missing", Spec{PodSelector: &LabelSelector{MatchLabels: map[string]string{"app": "x"}}}, nginx, false},
		{"pod matchLabels no pod", Spec{PodSelector: &LabelSelector{MatchLabels: map[string]string{"run": "x"}}}, service, false},
		{"pod empty selector", Spec{PodSelector: &LabelSelector{}}, service, true},
		{"pod In", Spec{PodSelector: &LabelSelector{MatchExpressions: []Requirement{{Key: "tier", Operator: "In", Values: []string{"db", "web"}}}}}, nginx, true},
		{"pod In absent", Spec{PodSelector: &LabelSelector{MatchExpressions: []Requirement{{Key: "zone", Operator: "In", Values: []string{"a"}}}}}, nginx, false},
		{"pod NotIn", Spec{PodSelector: &LabelSelector{MatchExpressions: []Requirement{{Key: "tier", Operator: "NotIn", Values: []string{"web"}}}}}, nginx, false},
		{"pod NotIn absent", Spec{PodSelector: &LabelSelector{MatchExpressions: []Requirement{{Key: "zone", Operator: "NotIn", Values: []string{"a"}}}}}, nginx, true},
		{"pod Exists", Spec{PodSelector: &LabelSelector{MatchExpressions: []Requirement{{Key: "tier", Operator: "Exists"}}}}, nginx, true},
		{"pod DoesNotExist", Spec{PodSelector: &LabelSelector{MatchExpressions: []Requirement{{Key: "tier", Operator: "DoesNotExist"}}}}, nginx, false},
		{"pod bad operator", Spec{PodSelector: &LabelSelector{MatchExpressions: []Requirement{{Key: "tier", Operator: "Gt"}}}}, nginx, false},
		{"pod labels and expressions AND", Spec{PodSelector: &LabelSelector{
			MatchLabels:      map[string]string{"run": "latencytest2"},
			MatchExpressions: []Requirement{{Key: "tier", Operator: "In", Values: []string{"db"}}}}}, nginx, false},
		{"namespace implied name", Spec{NamespaceSelector: &LabelSelector{MatchLabels: map[string]string{NamespaceNameLabel: "default"}}}, nginx, true},
		{"namespace other name", Spec{NamespaceSelector: &LabelSelector{MatchLabels: map[string]string{NamespaceNameLabel: "kube-system"}}}, nginx, false},
		{"namespace labels", Spec{NamespaceSelector: &LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}, nginx, true},
		{"service cgroup", Spec{ServiceSelector: &ServiceSelector{Cgroup: "systemd:/system.slice/chronyd.service"}}, service, true},
		{"service cgroup without prefix", Spec{ServiceSelector: &ServiceSelector{Cgroup: "/system.slice/chronyd.service"}}, service, true},
		{"service cgroup glob", Spec{ServiceSelector: &ServiceSelector{Cgroup: "systemd:/system.slice/chrony*"}}, service, true},
		{"service cgroup differs", Spec{ServiceSelector: &ServiceSelector{Cgroup: "systemd:/system.slice/sshd.service"}}, service, false},
		{"service name", Spec{ServiceSelector: &ServiceSelector{Name: "chronyd.service"}}, service, true},
		{"service name without suffix", Spec{ServiceSelector: &ServiceSelector{Name: "chronyd"}}, service, true},
		{"service selector on container", Spec{ServiceSelector: &ServiceSelector{Cgroup: "*"}}, nginx, false},
		{"machine hostname list", Spec{MachineSelector: &MachineSelector{Hostname: StringList{"node-9", "node-1.*"}}}, nginx, true},
		{"machine hostname miss", Spec{MachineSelector: &MachineSelector{Hostname: StringList{"node-9"}}}, nginx, false},
		{"machine uid", Spec{MachineSelector: &MachineSelector{MachineUID: StringList{"mach:abc"}}}, nginx, true},
		{"machine matchFields uid", Spec{MachineSelector: &MachineSelector{MatchFields: map[string]string{"uid": "mach:*"}}}, nginx, true},
		{"every selector AND", Spec{
			ContainerSelector: &ContainerSelector{Image: "nginx"},
			PodSelector:       &LabelSelector{MatchLabels: map[string]string{"run": "latencytest2"}},
			NamespaceSelector: &LabelSelector{MatchLabels: map[string]string{NamespaceNameLabel: "default"}},
			MachineSelector:   &MachineSelector{Hostname: StringList{"node-2"}},
		}, nginx, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.spec.Selects(tt.id); got != tt.want {
				t.Errorf("Selects = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	off := false
	mk := func(name, typ string, spec Spec) *WorkloadPolicy {
		return &WorkloadPolicy{APIVersion: APIVersionBulwark, Kind: KindWorkloadPolicy,
			Metadata: Metadata{Name: name, Type: typ}, Spec: spec}
	}
	policies := []*WorkloadPolicy{
		mk("z-nginx", TypeContainer, Spec{ContainerSelector: &ContainerSelector{Image: "nginx"}}),
		mk("a-any-nginx", TypeContainer, Spec{ContainerSelector: &ContainerSelector{Image: "*nginx*"}}),
		mk("disabled", TypeContainer, Spec{ContainerSelector: &ContainerSelector{Image: "nginx"}, Enabled: &off}),
		mk("no-selector", TypeContainer, Spec{}),
		mk("service", TypeLinuxService, Spec{ServiceSelector: &ServiceSelector{Cgroup: "*"}}),
		mk("redis", TypeContainer, Spec{ContainerSelector: &ContainerSelector{Image: "redis"}}),
		nil,
	}
	got := Select(policies, Identity{Type: TypeContainer, Image: "nginx:latest"})
	var names []string
	for _, p := range got {
		names = append(names, p.Metadata.Name)
	}
	if want := []string{"a-any-nginx", "z-nginx"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Select = %v, want %v", names, want)
	}
	got = Select(policies, Identity{Type: TypeLinuxService, ServiceCgroup: "systemd:/system.slice/x.service"})
	if len(got) != 1 || got[0].Metadata.Name != "service" {
		t.Errorf("Select(service) = %v, want [service]", got)
	}
}

func TestProcessSelectorMatches(t *testing.T) {
	tests := []struct {
		name             string
		sel              ProcessSelector
		comm, exe, euser string
		want             bool
	}{
		{"empty selects any process", ProcessSelector{}, "sh", "/bin/sh", "root", true},
		{"'*' crosses '/'", ProcessSelector{Exe: StringList{"/usr/*"}}, "curl", "/usr/local/bin/curl", "root", true},
		{"one glob of the list", ProcessSelector{Name: StringList{"wget", "cu?l"}}, "curl", "/usr/bin/curl", "root", true},
		{"every field must match", ProcessSelector{Name: StringList{"curl"}, Euser: StringList{"www-data"}}, "curl", "/usr/bin/curl", "root", false},
		{"no glob matches", ProcessSelector{Exe: StringList{"/bin/*"}}, "curl", "/usr/bin/curl", "root", false},
		{"matchFields", ProcessSelector{MatchFields: map[string]string{"euser": "www-*"}}, "sh", "/bin/sh", "www-data", true},
		{"matchFields mismatch", ProcessSelector{MatchFields: map[string]string{"exe": "/usr/*"}}, "sh", "/bin/sh", "root", false},
		{"unknown field never matches", ProcessSelector{MatchFields: map[string]string{"pid": "*"}}, "sh", "/bin/sh", "root", false},
		{"matchFieldsExpressions", ProcessSelector{MatchFieldsExpressions: []Requirement{{Key: "name", Operator: "NotIn", Values: []string{"sh"}}}},
			"sh", "/bin/sh", "root", false},
	}
	for _, tc := range tests {
		if got := tc.sel.Matches(tc.comm, tc.exe, tc.euser); got != tc.want {
			t.Errorf("%s: Matches(%q, %q, %q) = %v, want %v", tc.name, tc.comm, tc.exe, tc.euser, got, tc.want)
		}
	}
}
