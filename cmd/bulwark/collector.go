package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/collector"
)

func newCollectorCmd() *cobra.Command {
	var opts collector.Options
	var maxSize string
	cmd := &cobra.Command{
		Use:   "collector",
		Short: "Run the local collector: store what agents stream and answer bulwark get",
		Long: `The collector listens on a root-only unix socket for the records agents
stream to it (fingerprints, deviations, flags, workload lifecycle, policies
in force, agent counters), stores them in an embedded database with
retention by age and size, and answers the queries of "bulwark get",
"bulwark create policy --image" and "--with-deviations". With
--metrics-addr it also serves Prometheus metrics on /metrics over TCP.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			size, err := collector.ParseSize(maxSize)
			if err != nil {
				return fmt.Errorf("--max-size: %w", err)
			}
			opts.MaxSize = size
			opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			srv, err := collector.NewServer(opts)
			if err != nil {
				return err
			}
			opts.Logger.Info("collector: serving", "socket", opts.Socket, "db", opts.DB, "metrics", srv.MetricsAddr())
			return srv.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Socket, "socket", collector.DefaultSocket, "unix socket agents and the CLI connect to")
	f.StringVar(&opts.DB, "db", collector.DefaultDB, "database file")
	f.DurationVar(&opts.Retention, "retention", collector.DefaultRetention, "remove what was last seen longer ago than this (0: keep)")
	f.StringVar(&maxSize, "max-size", "256MiB", "bound on the stored data; the oldest goes first (0: no bound)")
	f.StringVar(&opts.MetricsAddr, "metrics-addr", "", "TCP address for Prometheus metrics, e.g. 127.0.0.1:9464 (default: none)")
	return cmd
}

// collectorSocketFlag adds --collector-socket for commands that read the
// collector.
func collectorSocketFlag(cmd *cobra.Command, socket *string) {
	cmd.Flags().StringVar(socket, "collector-socket", envOr("BULWARK_COLLECTOR_SOCKET", collector.DefaultSocket), "collector socket")
}
