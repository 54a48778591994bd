package agent

import (
	"fmt"
	"sync"

	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/policy"
)

// ContainerInfo is what a runtime integration (the NRI plugin, the OCI
// hook) knows about a container when it reports it to the agent.
type ContainerInfo struct {
	ID           string
	Name         string
	PodSandboxID string
	PodName      string
	PodUID       string
	Namespace    string
	PodLabels    map[string]string
	// Image is the image reference and ImageID the image (config) digest.
	Image   string
	ImageID string
	// PID is a process inside the container (runc init before the
	// entrypoint runs); 0 when not known yet.
	PID int
	// Runtime is RuntimeDocker for a Docker container, "" for one the NRI
	// runtime reports.
	Runtime string
	// Rootfs, set by the OCI hook, is the container's root filesystem as
	// a path in PID's mount namespace: the hook runs before PID enters it.
	Rootfs string
}

// Workload is one container the agent tracks: its identity, where it runs
// and which policy guards it. The agent's lock guards its fields, except
// the fingerprint's (fpMu).
type Workload struct {
	Info     ContainerInfo
	Identity policy.Identity
	// CgroupPath is the workload's cgroup v2 directory and CgroupID its id;
	// both are zero until the workload is armed.
	CgroupPath string
	CgroupID   uint64
	// Policy is the name of the policy that selects the workload ("" for
	// none) and Mode what the kernel does: "observe", "audit" or "enforce".
	Policy string
	Mode   string
	// Users maps the workload's own user names to uids (its /etc/passwd).
	Users map[string]uint32
	// hookArmed says the OCI hook armed the container the runtime
	// reported, whose NRI start is still to come.
	hookArmed bool

	// armMu serializes arming and disarming the workload; it is taken
	// before the agent's lock, never while holding it.
	armMu sync.Mutex
	// root is the root the workload's executables resolve from, found at
	// its first arm (armMu guards it).
	root *bpf.Root

	// policy is what the kernel enforces for the workload.
	policy *policy.WorkloadPolicy
	// unreachable is what compiling policy failed closed for.
	unreachable []string
	// fingerprint builds the workload's fingerprint from what the kernel
	// reports; fingerprintDirty says it changed since it was last sent.
	// fpMu guards both (not the agent's lock: building is slow).
	fpMu             sync.Mutex
	fingerprint      *FingerprintBuilder
	fingerprintDirty bool
}

// Modes the kernel can run a workload in; ModeObserve is for workloads no
// policy selects, which are only fingerprinted.
const (
	ModeObserve = "observe"
)

// identityOf is the identity of a container on this node, with its
// namespace's current labels.
func (a *Agent) identityOf(info ContainerInfo) policy.Identity {
	return containerIdentity(info, a.cfg.Hostname, a.nsLabels.get(info.Namespace))
}

// containerIdentity turns container information into the identity that
// policy selectors match.
func containerIdentity(info ContainerInfo, hostname string, nsLabels map[string]string) policy.Identity {
	id := policy.Identity{
		Type:          policy.TypeContainer,
		Image:         info.Image,
		ImageID:       info.ImageID,
		ContainerName: info.Name,
		ContainerID:   info.ID,
		PodName:       info.PodName,
		PodUID:        info.PodUID,
		PodLabels:     info.PodLabels,
		Namespace:     info.Namespace,
		Hostname:      hostname,
	}
	if info.Namespace != "" {
		id.NamespaceLabels = nsLabels // the name label is implied (policy.NamespaceLabels)
	}
	if n, err := policy.NormalizeImage(info.Image); err == nil {
		id.Image = n
	}
	return id
}

// choosePolicy picks the policy that guards a workload among the enabled
// policies selecting it. When several select it, the first by name wins and
// the others are returned so the conflict can be reported.
func choosePolicy(pols []*policy.WorkloadPolicy, id policy.Identity) (*policy.WorkloadPolicy, []string) {
	sel := policy.Select(pols, id) // ordered by name
	if len(sel) == 0 {
		return nil, nil
	}
	var others []string
	for _, p := range sel[1:] {
		others = append(others, p.Metadata.Name)
	}
	return sel[0], others
}

// target is what responding to a deviation reads of its workload, copied
// under the agent's lock (runtime events and namespace changes rewrite a
// workload's information and identity).
type target struct {
	name       string // describe()
	id         policy.Identity
	podSandbox string
	dockerID   string // a Docker container's id, which agentKillPod kills
	cgroupID   uint64 // the workload's cgroup, which kills stay inside
}

// targetOf copies what a response needs of w; a.mu is held.
func targetOf(w *Workload) target {
	t := target{name: w.describe(), id: w.Identity, podSandbox: w.Info.PodSandboxID, cgroupID: w.CgroupID}
	if w.Info.Runtime == RuntimeDocker {
		t.dockerID = w.Info.ID
	}
	return t
}

// describe names a workload for people: namespace/pod/container, or the
// container id when it has no pod. The agent's lock is held.
func (w *Workload) describe() string {
	if w.Info.PodName != "" {
		return fmt.Sprintf("%s/%s/%s", w.Info.Namespace, w.Info.PodName, w.Info.Name)
	}
	if w.Info.Name != "" {
		return w.Info.Name
	}
	return w.Info.ID
}
