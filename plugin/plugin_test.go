package plugin

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwarkhq/bulwark/hook"
)

func TestContainerInfo(t *testing.T) {
	pod := &api.PodSandbox{Id: "pod1", Name: "web-0", Uid: "u-1", Namespace: "shop", Labels: map[string]string{"app": "web", "io.cri-containerd.kind": "sandbox", "oci_runtime_type": "io.containerd.runc.v2"}}
	tests := []struct {
		name              string
		pod               *api.PodSandbox
		ctr               *api.Container
		image, imageID    string
		podName, podNamsp string
	}{
		{
			name: "image from NRI (containerd 2.4)",
			pod:  pod,
			ctr: &api.Container{Id: "c1", Name: "nginx", PodSandboxId: "pod1", Pid: 42,
				Image:       &api.Image{Name: "docker.io/library/nginx:1.25", ConfigDigest: "sha256:abc"},
				Annotations: map[string]string{annContainerdImage: "nginx:1.25"}},
			image: "nginx:1.25", imageID: "sha256:abc", podName: "web-0", podNamsp: "shop",
		},
		{
			name: "one image under two tags: the name it was created with",
			pod:  pod,
			ctr: &api.Container{Id: "c1", Name: "app", PodSandboxId: "pod1",
				Image:       &api.Image{Name: "localhost/other-tag:1", ConfigDigest: "sha256:abc"},
				Annotations: map[string]string{annContainerdImage: "localhost/app:1"}},
			image: "localhost/app:1", imageID: "sha256:abc", podName: "web-0", podNamsp: "shop",
		},
		{
			name: "image from containerd annotation",
			pod:  pod,
			ctr: &api.Container{Id: "c1", Name: "nginx", PodSandboxId: "pod1",
				Annotations: map[string]string{annContainerdImage: "nginx:1.25"}},
			image: "nginx:1.25", podName: "web-0", podNamsp: "shop",
		},
		{
			name: "image from CRI-O annotations, pod from labels",
			ctr: &api.Container{Id: "c1", Name: "nginx",
				Labels:      map[string]string{labelPodName: "web-1", labelPodNamespace: "prod"},
				Annotations: map[string]string{annCrioImage: "quay.io/x/y:2", annCrioImageRef: "sha256:def"}},
			image: "quay.io/x/y:2", imageID: "sha256:def", podName: "web-1", podNamsp: "prod",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := ContainerInfo(tt.pod, tt.ctr)
			if info.Image != tt.image || info.ImageID != tt.imageID {
				t.Errorf("image = %q %q, want %q %q", info.Image, info.ImageID, tt.image, tt.imageID)
			}
			if info.PodName != tt.podName || info.Namespace != tt.podNamsp {
				t.Errorf("pod = %s/%s, want %s/%s", info.Namespace, info.PodName, tt.podNamsp, tt.podName)
			}
			if info.ID != tt.ctr.Id || info.PID != int(tt.ctr.Pid) || info.Name != tt.ctr.Name {
				t.Errorf("container fields not copied: %+v", info)
			}
			if tt.pod != nil && (info.PodLabels["app"] != "web" || len(info.PodLabels) != 1 || info.PodUID != "u-1") {
				t.Errorf("pod labels/uid not copied: %+v", info)
			}
		})
	}
}

// TestCreateContainerInjectsHookOnce: with InjectHook, CreateContainer
// adds Bulwark's createRuntime hook, once: a container that already has
// it (a second plugin instance, a hooks.d entry) gets no second one.
func TestCreateContainerInjectsHookOnce(t *testing.T) {
	p := New(&armingAgent{}, "", slog.Default())
	h := handlers{p}
	adj, _, err := h.CreateContainer(context.Background(), nil, &api.Container{Id: "c1"})
	if err != nil || adj != nil {
		t.Fatalf("without InjectHook: adjustment %v, %v; want none", adj, err)
	}
	p.InjectHook("/usr/bin/bulwark-oci-hook", hook.Options{Socket: "/run/a.sock", PolicyDir: "/p", Timeout: 2 * time.Second, Bulwark: "/usr/bin/bulwark"})
	adj, _, err = h.CreateContainer(context.Background(), nil, &api.Container{Id: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	cr := adj.GetHooks().GetCreateRuntime()
	if len(cr) != 1 || cr[0].Path != "/usr/bin/bulwark-oci-hook" || cr[0].Timeout.GetValue() <= 2 ||
		!hook.IsBulwarkHook(specs.Hook{Path: cr[0].Path, Args: cr[0].Args}) || cr[0].Args[1] != hook.StageCreateRuntime {
		t.Fatalf("injected hooks %+v", cr)
	}
	hooked := &api.Container{Id: "c2", Hooks: &api.Hooks{CreateRuntime: cr}}
	if adj, _, err := h.CreateContainer(context.Background(), nil, hooked); err != nil || adj != nil {
		t.Errorf("container already hooked: adjustment %v, %v; want none", adj, err)
	}
}
