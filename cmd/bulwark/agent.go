package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/plugin"
)

func newAgentCmd() *cobra.Command {
	var cfg agent.Config
	var nriSocket, pinDir, backend string
	var noNRI bool
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: arm workloads with their policies and report deviations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			cfg.Log = log
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			engine, err := bpf.Open(bpf.Options{PinDir: pinDir, Backend: backend, Logger: log})
			if err != nil {
				return fmt.Errorf("open kernel engine: %w", err)
			}
			// Close keeps the pins: enforcement outlives the agent.
			defer engine.Close()
			a, err := agent.New(cfg, engine)
			if err != nil {
				return err
			}
			errc := make(chan error, 1)
			if !noNRI {
				go func() { errc <- plugin.New(a, nriSocket, log).Run(ctx) }()
			}
			err = a.Run(ctx)
			stop()
			if !noNRI {
				if perr := <-errc; err == nil {
					err = perr
				}
			}
			if err != nil && ctx.Err() == nil {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.PolicyDir, "policy-dir", "/etc/bulwark/policies", "watched policy directory")
	f.StringVar(&cfg.Socket, "socket", agent.DefaultSocket, "agent API socket")
	f.StringVar(&cfg.Hostname, "hostname", "", "node name (default: the host name)")
	f.StringVar(&cfg.NamespaceLabelsFile, "namespace-labels", "", "YAML file mapping namespace names to their labels")
	f.StringVar(&cfg.RuntimeEndpoint, "runtime-endpoint", "/run/containerd/containerd.sock", "CRI socket used by agentKillPod")
	f.StringVar(&nriSocket, "nri-socket", plugin.DefaultSocket, "runtime NRI socket")
	f.BoolVar(&noNRI, "no-nri", false, "do not connect to a runtime over NRI")
	f.StringVar(&pinDir, "pin-dir", "/sys/fs/bpf/bulwark", "bpffs directory for pinned programs and maps")
	f.StringVar(&backend, "backend", "auto", "enforcement backend: auto, lsm or tracing")
	return cmd
}

// agentSocketFlag adds --socket for commands that talk to the agent.
func agentSocketFlag(cmd *cobra.Command, socket *string) {
	cmd.Flags().StringVar(socket, "socket", envOr("BULWARK_AGENT_SOCKET", agent.DefaultSocket), "agent API socket")
}

// envOr returns the environment variable key, or def when it is unset.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
