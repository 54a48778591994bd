package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/bulwarkhq/bulwark/hook/createruntime"
	"github.com/bulwarkhq/bulwark/internal/unixapi"
	"github.com/bulwarkhq/bulwark/policy"
)

// DefaultSocket is where the agent serves its API.
const DefaultSocket = "/run/bulwark/agent.sock"

// maxRequestBody bounds the size of a policy sent to the API.
const maxRequestBody = 4 << 20

// Status is the agent's state as `bulwark status` shows it.
type Status struct {
	Backend string `json:"backend"`
	// UDPAtReceive: UDP datagrams are decided for the node of the task
	// that receives them; false where the kernel lacks the receive hooks
	// (tracing backend before Linux 6.3), where they are decided for the
	// node bound to their port.
	UDPAtReceive bool   `json:"udpAtReceive"`
	Hostname     string `json:"hostname"`
	// Lost counts the kernel events lost (ring buffer full) and
	// Unaggregated the deviations reported one by one (aggregation table
	// full), of all workloads since the kernel state was created.
	Lost         uint64 `json:"lostEvents"`
	Unaggregated uint64 `json:"unaggregatedDeviations"`
	// UnparsedDNS counts the DNS answers workloads received that the
	// kernel could not parse within its bounds: they granted no address
	// to a dnsSelector rule.
	UnparsedDNS uint64 `json:"unparsedDNSAnswers"`
	// LinkRepairs counts the enforcement links and pins found removed
	// or detached out of band, and restored, since the agent started.
	LinkRepairs uint64            `json:"linkRepairs"`
	Workloads   []WorkloadStatus  `json:"workloads"`
	Policies    []PolicyStatus    `json:"policies"`
	Problems    map[string]string `json:"problems,omitempty"`
	Deviations  int               `json:"deviations"`
	Flags       int               `json:"flags"`
	// Ready is true once the agent has adopted the runtime's running
	// containers and, with a Kubernetes API, listed the namespaces.
	Ready bool `json:"ready"`
}

// WorkloadStatus is one workload in Status.
type WorkloadStatus struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Image     string `json:"image,omitempty"`
	CgroupID  uint64 `json:"cgroupID"`
	Policy    string `json:"policy,omitempty"`
	Mode      string `json:"mode"`
	// Lost, Unaggregated and UnparsedDNS are the workload's share of
	// Status.Lost, Status.Unaggregated and Status.UnparsedDNS since it
	// was armed.
	Lost         uint64 `json:"lostEvents"`
	Unaggregated uint64 `json:"unaggregatedDeviations"`
	UnparsedDNS  uint64 `json:"unparsedDNSAnswers"`
	// Unreachable lists the parts of the workload's policy that were
	// failed closed when it was armed (bpf.Compiled.Unreachable).
	Unreachable []string `json:"unreachable,omitempty"`
}

// PolicyStatus is one policy in Status.
type PolicyStatus struct {
	Name      string `json:"name"`
	Mode      string `json:"mode"`
	Enabled   bool   `json:"enabled"`
	Workloads int    `json:"workloads"`
}

// appliedPolicies is the body of a successful policy PUT.
type appliedPolicies struct {
	Applied []string `json:"applied"`
}

// handler routes the agent API.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		unixapi.WriteJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("PUT /v1/policies", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			unixapi.WriteError(w, http.StatusBadRequest, err)
			return
		}
		names, err := a.ApplyPolicy(data)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, errInvalidPolicy) {
				code = http.StatusBadRequest
			}
			unixapi.WriteError(w, code, err)
			return
		}
		unixapi.WriteJSON(w, http.StatusOK, appliedPolicies{names})
	})
	mux.HandleFunc("DELETE /v1/policies/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := a.DeletePolicy(r.PathValue("name")); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, os.ErrNotExist) {
				code = http.StatusNotFound
			}
			unixapi.WriteError(w, code, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/deviations", func(w http.ResponseWriter, r *http.Request) {
		unixapi.WriteJSON(w, http.StatusOK, a.Deviations())
	})
	mux.HandleFunc("POST "+createruntime.Path, a.handleHook)
	mux.HandleFunc("GET /v1/flags", func(w http.ResponseWriter, r *http.Request) {
		unixapi.WriteJSON(w, http.StatusOK, a.Flags())
	})
	return mux
}

// serveAPI listens on the unix socket path (root only, 0600; refused while
// another agent serves it) and serves the API until ctx ends.
func (a *Agent) serveAPI(ctx context.Context, path string) error {
	l, err := unixapi.Listen(path)
	if err != nil {
		return fmt.Errorf("agent socket: %w", err)
	}
	return unixapi.Serve(ctx, l, a.handler(), 2*time.Second)
}

// Client talks to an agent over its API socket.
type Client struct {
	api *unixapi.Client
}

// NewClient returns a client for the agent listening on socket.
func NewClient(socket string) *Client {
	return &Client{api: unixapi.NewClient("agent", socket, 30*time.Second)}
}

// Status returns the agent's status.
func (c *Client) Status() (Status, error) {
	var s Status
	err := c.api.Do(http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// ApplyPolicy sends policy documents (YAML or JSON); the agent validates
// them, stores them in its policy directory and applies them. It returns
// the names of the policies applied.
func (c *Client) ApplyPolicy(data io.Reader) ([]string, error) {
	var out appliedPolicies
	err := c.api.Do(http.MethodPut, "/v1/policies", data, &out)
	return out.Applied, err
}

// DeletePolicy removes a policy by name.
func (c *Client) DeletePolicy(name string) error {
	return c.api.Do(http.MethodDelete, "/v1/policies/"+url.PathEscape(name), nil, nil)
}

// Deviations returns the deviations the agent recorded.
func (c *Client) Deviations() ([]policy.Deviation, error) {
	var out []policy.Deviation
	err := c.api.Do(http.MethodGet, "/v1/deviations", nil, &out)
	return out, err
}

// DeviationsOf returns the deviations the agent recorded for the policy
// named name.
func (c *Client) DeviationsOf(name string) ([]policy.Deviation, error) {
	all, err := c.Deviations()
	var out []policy.Deviation
	for _, d := range all {
		if d.Metadata.PolicyName == name {
			out = append(out, d)
		}
	}
	return out, err
}

// Flags returns the flags the agent raised.
func (c *Client) Flags() ([]policy.Flag, error) {
	var out []policy.Flag
	err := c.api.Do(http.MethodGet, "/v1/flags", nil, &out)
	return out, err
}
