package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/bpf"
	"github.com/bulwarkhq/bulwark/cgroup"
	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/plugin"
)

func newAgentCmd() *cobra.Command {
	var cfg agent.Config
	var nriSocket, pinDir, backend string
	var noNRI, noCollector, services, ociHook bool
	var servicesRoot, kubeconfig string
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
			cfg.AwaitSynchronize = !noNRI
			if cfg.Kube, err = agent.KubeConfig(kubeconfig); err != nil {
				return err
			}
			if noCollector {
				cfg.CollectorSocket = ""
			}
			if services {
				cfg.ServicesRoot = servicesRoot
				if cfg.ServicesRoot == "" {
					root, err := cgroup.Mountpoint()
					if err != nil {
						return err
					}
					cfg.ServicesRoot = filepath.Join(root, "system.slice")
				}
			}
			a, err := agent.New(cfg, engine)
			if err != nil {
				return err
			}
			defer a.Close()
			// The plugin stops the agent when it fails for good.
			runCtx, cancelRun := context.WithCancel(ctx)
			defer cancelRun()
			perrc := make(chan error, 1)
			if !noNRI {
				p := plugin.New(a, nriSocket, log)
				if ociHook {
					self, hookBin, err := besideSelf(hook.HookBinary)
					if err != nil {
						return fmt.Errorf("--oci-hook: %w", err)
					}
					p.InjectHook(hookBin, hook.Options{Socket: cfg.Socket, PolicyDir: cfg.PolicyDir, Timeout: hook.DefaultTimeout, Bulwark: self})
				}
				go func() {
					perr := p.Run(runCtx)
					cancelRun()
					perrc <- perr
				}()
			} else {
				perrc <- nil
			}
			err = a.Run(runCtx)
			signalled := ctx.Err() != nil
			cancelRun()
			if perr := <-perrc; perr != nil {
				return perr
			}
			if signalled {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.PolicyDir, "policy-dir", "/etc/bulwark/policies", "watched policy directory")
	f.StringVar(&cfg.Socket, "socket", agent.DefaultSocket, "agent API socket")
	f.StringVar(&cfg.Hostname, "hostname", "", "node name (default: the host name)")
	f.StringVar(&cfg.NamespaceLabelsFile, "namespace-labels", "", "YAML file mapping namespace names to their labels (reread when it changes; used without a Kubernetes API)")
	f.StringVar(&kubeconfig, "kubeconfig", "auto", `kubeconfig file of the Kubernetes API whose namespaces are watched for labels; "auto": the in-cluster API when running in a pod; "": none`)
	f.StringVar(&cfg.OwnPodUID, "pod-uid", os.Getenv("BULWARK_POD_UID"), "UID of the agent's own pod, whose containers are never armed (default $BULWARK_POD_UID)")
	f.StringVar(&cfg.RuntimeEndpoint, "runtime-endpoint", "/run/containerd/containerd.sock", "CRI socket used by agentKillPod")
	f.BoolVar(&cfg.Docker, "docker", true, "name the OCI hook's containers from Docker's API, and follow Docker's events")
	f.StringVar(&cfg.DockerHost, "docker-host", "", "Docker Engine API the OCI hook's containers are looked up in (default: Docker's)")
	f.StringVar(&nriSocket, "nri-socket", plugin.DefaultSocket, "runtime NRI socket")
	f.BoolVar(&noNRI, "no-nri", false, "do not connect to a runtime over NRI")
	f.BoolVar(&ociHook, "oci-hook", true, "give every container created over NRI Bulwark's OCI createRuntime hook, which arms it inside runc create (CRI-O ignores a failed NRI start)")
	f.StringVar(&pinDir, "pin-dir", "/sys/fs/bpf/bulwark", "bpffs directory for pinned programs and maps")
	f.StringVar(&backend, "backend", "auto", "enforcement backend: auto, lsm or tracing")
	f.StringVar(&cfg.CollectorSocket, "collector-socket", collector.DefaultSocket, "collector socket the agent streams records to")
	f.BoolVar(&noCollector, "no-collector", false, "send nothing to a collector")
	f.StringVar(&cfg.SpoolDir, "spool-dir", "/var/lib/bulwark/spool", "on-disk queue of records the collector has not taken yet")
	f.Int64Var(&cfg.MaxSpoolBytes, "max-spool-bytes", collector.DefaultMaxSpoolBytes, "bound of the spool (oldest records dropped and counted beyond it)")
	f.BoolVar(&services, "services", true, "fingerprint and guard systemd services (the *.service cgroups under system.slice)")
	f.StringVar(&servicesRoot, "services-root", "", "cgroup directory whose *.service children are services (default: system.slice under the cgroup v2 root)")
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
