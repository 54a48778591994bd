// Package unixapi is the plumbing shared by Bulwark's local JSON APIs (the
// agent's and the collector's): a root-only unix socket listener, an HTTP
// server that stops with its context, JSON replies and errors, and a client
// that reaches such a server through its socket.
package unixapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// readHeaderTimeout bounds how long a client may take to send its headers.
const readHeaderTimeout = 10 * time.Second

// Listen listens on a unix socket at path that only root can use (mode
// 0600, its directory created 0700 when missing). A stale socket left by a
// dead server is replaced; a socket another process still serves, or a file
// that is not a socket, is an error. Closing the listener removes the socket.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen on %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen on %s: another process is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restrict socket %s: %w", path, err)
	}
	return ln, nil
}

// Serve serves h on l until ctx ends, then shuts the server down, giving
// requests in flight up to grace to finish (then closing what is still
// open), and closes l.
func Serve(ctx context.Context, l net.Listener, h http.Handler, grace time.Duration) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		srv.Close()
		return fmt.Errorf("serve %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		srv.Close() // the grace ran out: drop the connections still open
		return fmt.Errorf("shut down %s: %w", l.Addr(), err)
	}
	return nil
}

// errorBody is the JSON body of every failed call.
type errorBody struct {
	Error string `json:"error"`
}

// WriteJSON replies with status code and v encoded as JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError replies with status code and err's message as the body's
// "error" field, which Client.Do returns as an *Error.
func WriteError(w http.ResponseWriter, code int, err error) {
	WriteJSON(w, code, errorBody{err.Error()})
}

// Error is a failure the server reported: its HTTP status and message.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// Client calls a server listening on a unix socket.
type Client struct {
	name   string
	socket string
	http   *http.Client
}

// NewClient returns a client for the server on socket; name ("agent",
// "collector") names the server, and its `bulwark` command, in errors. Each call may take up
// to timeout.
func NewClient(name, socket string, timeout time.Duration) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	return &Client{name: name, socket: socket, http: &http.Client{Transport: tr, Timeout: timeout}}
}

// Do sends a request with an optional JSON body and decodes the JSON reply
// into out (the reply is discarded when out is nil). A reply with an error
// status gives an *Error; a failure to reach the server says which socket
// has no server and which command starts one.
func (c *Client) Do(method, path string, body io.Reader, out any) error {
	req, err := http.NewRequest(method, "http://"+c.name+path, body)
	if err != nil {
		return fmt.Errorf("%s API: %w", c.name, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return fmt.Errorf("no %s at %s (is \"bulwark %s\" running?): %w", c.name, c.socket, c.name, op.Err)
	}
	if err != nil {
		return fmt.Errorf("%s API: %w", c.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e errorBody
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			return &Error{Status: resp.StatusCode, Message: e.Error}
		}
		return &Error{Status: resp.StatusCode, Message: fmt.Sprintf("%s API: %s %s: %s", c.name, method, path, resp.Status)}
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s API: decode %s reply: %w", c.name, path, err)
	}
	return nil
}
