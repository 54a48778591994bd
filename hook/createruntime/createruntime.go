// Package createruntime is the process side of Bulwark's createRuntime
// hook (bulwark-oci-hook): the request it sends the agent, the agent's
// reply, and the hand-over to the bulwark executable's fallback when the
// agent cannot be reached. It is apart from package hook so that the runc
// wrapper, which runs for every runc call, does not carry an HTTP client.
package createruntime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/hook"
)

// Request is what the OCI hook tells the agent of a container being
// created: runc has made its cgroup and its init process, which has not
// entered its root filesystem and runs nothing of the image.
type Request struct {
	ID  string `json:"id"`
	PID int    `json:"pid"`
	// Rootfs is the container's root filesystem, absolute, as PID's mount
	// namespace shows it.
	Rootfs      string            `json:"rootfs"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// TimeoutMillis is how long the hook waits for the reply; the agent
	// answers before then.
	TimeoutMillis int64 `json:"timeoutMillis"`
}

// Reply is the agent's answer once the container is armed.
type Reply struct {
	Policy string `json:"policy,omitempty"`
	Mode   string `json:"mode"`
}

// Path is the agent API's endpoint the hook calls.
const Path = "/v1/hooks/create-runtime"

// maxState bounds the OCI state read from stdin.
const maxState = 1 << 20

// ReadState decodes the OCI state runc writes to a hook's stdin.
func ReadState(r io.Reader) (specs.State, error) {
	var st specs.State
	if err := json.NewDecoder(io.LimitReader(r, maxState)).Decode(&st); err != nil {
		return st, fmt.Errorf("OCI state on stdin: %w", err)
	}
	if st.ID == "" {
		return st, errors.New("OCI state on stdin: no container id")
	}
	return st, nil
}

// Unreached is Run's error when the agent could not be asked:
// the bulwark executable's fallback (Fallback) decides then.
type Unreached struct {
	// State is the OCI state as runc sent it.
	State []byte
	Err   error
}

func (e *Unreached) Error() string { return "agent not reached: " + e.Err.Error() }

func (e *Unreached) Unwrap() error { return e.Err }

// Run is the createRuntime hook: it reads the container's state
// from stdin and waits, at most o.Timeout, for the agent to arm it. Any
// error means the container must not start (runc fails the create): the
// agent refused it, or the state is unusable; an *Unreached means the
// agent could not be asked, and Fallback must decide.
func Run(stdin io.Reader, o hook.Options) error {
	raw, err := io.ReadAll(io.LimitReader(stdin, maxState))
	if err != nil {
		return fmt.Errorf("OCI state on stdin: %w", err)
	}
	st, err := ReadState(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	if st.Pid <= 0 {
		return fmt.Errorf("container %s: OCI state has no pid", st.ID)
	}
	rootfs, err := hook.RootfsOf(st.Bundle)
	if err != nil {
		return fmt.Errorf("container %s: %w", st.ID, err)
	}
	req := Request{ID: st.ID, PID: st.Pid, Rootfs: rootfs, Annotations: st.Annotations,
		TimeoutMillis: o.Timeout.Milliseconds()}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var reply Reply
	err = call(o.Socket, o.Timeout, body, &reply)
	var refused *refusal
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refused):
		return fmt.Errorf("agent refused container %s: %w", st.ID, err)
	}
	return &Unreached{State: raw, Err: err}
}

// maxReply bounds the agent's reply the hook reads.
const maxReply = 1 << 16

// refusal is the agent's answer that the container must not run: the
// message of its error reply's JSON body.
type refusal struct {
	message string
}

func (r *refusal) Error() string { return r.message }

// call posts body to the agent's Path on socket and decodes its reply
// into reply, all within timeout. It speaks HTTP/1.0 itself, the
// connection closing after the reply: net/http's package init and
// transport would add about half a millisecond to every container's
// start. An error status is a *refusal; any other error means the agent
// was not reached or did not answer.
func call(socket string, timeout time.Duration, body []byte, reply *Reply) error {
	conn, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return fmt.Errorf("no agent at %s (is \"bulwark agent\" running?): %w", socket, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	req := "POST " + Path + " HTTP/1.0\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), body...)); err != nil {
		return fmt.Errorf("agent API: %w", err)
	}
	resp, err := io.ReadAll(io.LimitReader(conn, maxReply))
	if err != nil {
		return fmt.Errorf("agent API: %w", err)
	}
	head, payload, ok := bytes.Cut(resp, []byte("\r\n\r\n"))
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	proto, rest, _ := bytes.Cut(line, []byte(" "))
	code, _, _ := bytes.Cut(rest, []byte(" "))
	status, err := strconv.Atoi(string(code))
	if !ok || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || err != nil {
		return fmt.Errorf("agent API: not an HTTP reply: %.80q", resp)
	}
	if status >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(payload, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("agent API: POST %s: %s", Path, rest)
		}
		return &refusal{message: e.Error}
	}
	if err := json.Unmarshal(payload, reply); err != nil {
		return fmt.Errorf("agent API: decode %s reply: %w", Path, err)
	}
	return nil
}

// Fallback replaces the hook with the bulwark executable's hook-fallback
// verb, which decides from the policy directory whether the container of
// u.State may start unguarded; the state is its stdin again. It returns
// only when that cannot be started.
func Fallback(u *Unreached, o hook.Options) error {
	fd, err := unix.MemfdCreate("oci-state", 0)
	if err != nil {
		return fmt.Errorf("fallback: %w", err)
	}
	f := os.NewFile(uintptr(fd), "oci-state")
	if _, err := f.Write(u.State); err != nil {
		return fmt.Errorf("fallback: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("fallback: %w", err)
	}
	if err := unix.Dup3(fd, 0, 0); err != nil {
		return fmt.Errorf("fallback: %w", err)
	}
	args := []string{"bulwark", hook.FallbackVerb, "--policy-dir", o.PolicyDir, "--timeout", hook.FallbackTimeout.String()}
	if o.DockerHost != "" {
		args = append(args, "--docker-host", o.DockerHost)
	}
	err = syscall.Exec(o.Bulwark, args, os.Environ())
	return fmt.Errorf("fallback: exec %s: %w", o.Bulwark, err)
}
