package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/bulwarkhq/bulwark/policy"
)

// DefaultSocket is where the agent serves its API.
const DefaultSocket = "/run/bulwark/agent.sock"

// maxRequestBody bounds the size of a policy sent to the API.
const maxRequestBody = 4 << 20

// Status is the agent's state as `bulwark status` shows it.
type Status struct {
	Backend    string            `json:"backend"`
	Hostname   string            `json:"hostname"`
	Lost       uint64            `json:"lostEvents"`
	Workloads  []WorkloadStatus  `json:"workloads"`
	Policies   []PolicyStatus    `json:"policies"`
	Problems   map[string]string `json:"problems,omitempty"`
	Deviations int               `json:"deviations"`
	Flags      int               `json:"flags"`
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
}

// PolicyStatus is one policy in Status.
type PolicyStatus struct {
	Name      string `json:"name"`
	Mode      string `json:"mode"`
	Enabled   bool   `json:"enabled"`
	Workloads int    `json:"workloads"`
}

// apiError is the body of every failed API call.
type apiError struct {
	Error string `json:"error"`
}

// appliedPolicies is the body of a successful policy PUT.
type appliedPolicies struct {
	Applied []string `json:"applied"`
}

// handler routes the agent API.
func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Status())
	})
	mux.HandleFunc("PUT /v1/policies", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
			return
		}
		names, err := a.ApplyPolicy(data)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, errInvalidPolicy) {
				code = http.StatusBadRequest
			}
			writeJSON(w, code, apiError{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, appliedPolicies{names})
	})
	mux.HandleFunc("DELETE /v1/policies/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := a.DeletePolicy(r.PathValue("name")); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, os.ErrNotExist) {
				code = http.StatusNotFound
			}
			writeJSON(w, code, apiError{err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/deviations", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Deviations())
	})
	mux.HandleFunc("GET /v1/flags", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, a.Flags())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// serveAPI listens on the unix socket path (root only, 0600) and serves
// the API until ctx ends.
func (a *Agent) serveAPI(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("agent socket %s: %w", path, err)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("agent socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("agent socket %s: %w", path, err)
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	err = srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Client talks to an agent over its API socket.
type Client struct {
	http *http.Client
}

// NewClient returns a client for the agent listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// do sends a request and decodes a JSON reply into out (when not nil).
func (c *Client) do(method, path string, body io.Reader, out any) error {
	req, err := http.NewRequest(method, "http://agent"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("agent API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e apiError
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("agent API: %s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Status returns the agent's status.
func (c *Client) Status() (Status, error) {
	var s Status
	err := c.do(http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// ApplyPolicy sends policy documents (YAML or JSON); the agent validates
// them, stores them in its policy directory and applies them. It returns
// the names of the policies applied.
func (c *Client) ApplyPolicy(data io.Reader) ([]string, error) {
	var out appliedPolicies
	err := c.do(http.MethodPut, "/v1/policies", data, &out)
	return out.Applied, err
}

// DeletePolicy removes a policy by name.
func (c *Client) DeletePolicy(name string) error {
	return c.do(http.MethodDelete, "/v1/policies/"+url.PathEscape(name), nil, nil)
}

// Deviations returns the deviations the agent recorded.
func (c *Client) Deviations() ([]policy.Deviation, error) {
	var out []policy.Deviation
	err := c.do(http.MethodGet, "/v1/deviations", nil, &out)
	return out, err
}

// Flags returns the flags the agent raised.
func (c *Client) Flags() ([]policy.Flag, error) {
	var out []policy.Flag
	err := c.do(http.MethodGet, "/v1/flags", nil, &out)
	return out, err
}
