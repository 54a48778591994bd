package policy

import "testing"

func TestNormalizeImage(t *testing.T) {
	const digest = "sha256:10d1f5b58f74683ad34eb29287e07dab1e90f10af243f151bb50aa5dbb4d62ee"
	tests := []struct {
		in, want string
	}{
		{"nginx", "docker.io/library/nginx:latest"},
		{"nginx:1.25", "docker.io/library/nginx:1.25"},
		{"library/nginx", "docker.io/library/nginx:latest"},
		{"docker.io/nginx", "docker.io/library/nginx:latest"},
		{"docker.io/library/nginx:latest", "docker.io/library/nginx:latest"},
		{"index.docker.io/library/nginx", "docker.io/library/nginx:latest"},
		{"bitnami/redis:7.2", "docker.io/bitnami/redis:7.2"},
		{"nginx@" + digest, "docker.io/library/nginx@" + digest},
		{"nginx:1.25@" + digest, "docker.io/library/nginx:1.25@" + digest},
		{"localhost/app", "localhost/app:latest"},
		{"localhost:5000/app", "localhost:5000/app:latest"},
		{"registry.example.com:5000/team/app:v1.2", "registry.example.com:5000/team/app:v1.2"},
		{"registry:5000/app", "registry:5000/app:latest"},
		{"ghcr.io/org/tool", "ghcr.io/org/tool:latest"},
		{"quay.io/coreos/etcd@" + digest, "quay.io/coreos/etcd@" + digest},
		{"Registry/app", "Registry/app:latest"},
		{"my-org/my_app__x.y", "docker.io/my-org/my_app__x.y:latest"},
	}
	for _, tt := range tests {
		got, err := NormalizeImage(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeImage(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNormalizeImageErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"Nginx",
		"nginx:",
		"nginx:-bad",
		"nginx@sha256:abc",
		"nginx@sha256:zz1f5b58f74683ad34eb29287e07dab1e90f10af243f151bb50aa5dbb4d62ee",
		"nginx@nodigest",
		"reg:port/app",
		"reg.io/",
		"a//b",
		"app_",
		"a..b",
		"a___b",
		"bad host.io/app",
	} {
		if got, err := NormalizeImage(in); err == nil {
			t.Errorf("NormalizeImage(%q) = %q, want an error", in, got)
		}
	}
}
