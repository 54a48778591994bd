// Command spawner is the e2e test image's process spawner: an application
// that starts child processes, so tests can check what happens to a child
// exec'd by a running workload.
//
// Usage: spawner [-every D] [-listen ADDR] [CMD [ARG...]]
//
// With -every it runs CMD every D; with -listen it serves HTTP: GET /
// answers "ok", GET /spawn runs CMD once (or the query's cmd= path with
// repeated arg= values) and answers with the outcome. Every outcome is also
// printed to stdout as one line:
//
//	spawn PATH: exit N: OUTPUT
//	spawn PATH: signal NAME
//	spawn PATH: error ERROR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	every := flag.Duration("every", 0, "run CMD periodically with this interval (0: never)")
	listen := flag.String("listen", "", "serve GET /spawn on this address")
	flag.Parse()
	if err := run(*every, *listen, flag.Args()); err != nil {
		log.Fatalf("spawner: %v", err)
	}
}

func run(every time.Duration, listen string, cmd []string) error {
	if (every > 0 || listen == "") && len(cmd) == 0 {
		return errors.New("no command to spawn")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", listen, err)
		}
		srv := &http.Server{Handler: handler(cmd), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			<-ctx.Done()
			_ = srv.Close()
		}()
		go func() {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				log.Printf("spawner: serve: %v", err)
			}
		}()
		fmt.Printf("listening on %s\n", ln.Addr())
	}
	if every <= 0 {
		if listen == "" {
			fmt.Println(spawn(cmd))
			return nil
		}
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		fmt.Println(spawn(cmd))
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func handler(def []string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/spawn", func(w http.ResponseWriter, r *http.Request) {
		cmd := def
		if p := r.URL.Query().Get("cmd"); p != "" {
			cmd = append([]string{p}, r.URL.Query()["arg"]...)
		}
		if len(cmd) == 0 {
			http.Error(w, "no command to spawn", http.StatusBadRequest)
			return
		}
		line := spawn(cmd)
		fmt.Println(line)
		fmt.Fprintln(w, line)
	})
	return mux
}

// spawn runs cmd to completion and describes how it ended.
func spawn(cmd []string) string {
	c := exec.Command(cmd[0], cmd[1:]...)
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return fmt.Sprintf("spawn %s: exit 0: %s", cmd[0], strings.TrimSpace(string(out)))
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("spawn %s: signal %s", cmd[0], ws.Signal())
		}
		return fmt.Sprintf("spawn %s: exit %d: %s", cmd[0], ee.ExitCode(), strings.TrimSpace(string(out)))
	default:
		return fmt.Sprintf("spawn %s: error %v", cmd[0], err)
	}
}
