package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/policy"
)

func newStatusCmd() *cobra.Command {
	var socket, output string
	var ready bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the agent's backend, workloads, policies and event loss",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != formatTable && output != policy.FormatJSON {
				return fmt.Errorf("-o %q: want %s or %s", output, formatTable, policy.FormatJSON)
			}
			st, err := agent.NewClient(socket).Status()
			if err != nil {
				return err
			}
			if ready {
				if !st.Ready {
					return errors.New("agent not ready: runtime containers or namespace labels not synchronized yet")
				}
				return nil
			}
			if output == policy.FormatJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return printStatus(cmd.OutOrStdout(), st)
		},
	}
	agentSocketFlag(cmd, &socket)
	cmd.Flags().StringVarP(&output, "output", "o", formatTable, "output format: table or json")
	cmd.Flags().BoolVar(&ready, "ready", false, "print nothing; fail unless the agent is ready (a readiness probe)")
	return cmd
}

// printStatus writes st as aligned tables.
func printStatus(w io.Writer, st agent.Status) error {
	fmt.Fprintf(w, "backend: %s\nnode: %s\nready: %t\nlost events: %d\nunaggregated deviations: %d\nunparsed DNS answers: %d\nlink repairs: %d\ndeviations: %d\nflags: %d\n",
		st.Backend, st.Hostname, st.Ready, st.Lost, st.Unaggregated, st.UnparsedDNS, st.LinkRepairs, st.Deviations, st.Flags)
	if st.Lost > 0 {
		fmt.Fprintln(w, "warning: the kernel lost events (ring buffer full): deviations may lack details, observations are missing")
	}
	if st.UnparsedDNS > 0 {
		fmt.Fprintln(w, "warning: DNS answers the kernel could not parse allowed no address to dnsSelector rules")
	}
	if st.LinkRepairs > 0 {
		fmt.Fprintln(w, "warning: enforcement links were removed or detached out of band (see the agent's flags)")
	}
	if !st.UDPAtReceive {
		fmt.Fprintln(w, "warning: UDP datagrams are decided for the process that bound the port, not the one that reads them (kernel lacks the receive hooks)")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tMODE\tENABLED\tWORKLOADS")
	for _, p := range st.Policies {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%d\n", p.Name, p.Mode, p.Enabled, p.Workloads)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "CONTAINER\tNAME\tNAMESPACE/POD\tIMAGE\tCGROUP\tPOLICY\tMODE\tLOST\tUNAGGREGATED\tUNPARSED-DNS")
	for _, wl := range st.Workloads {
		pod := "-"
		if wl.Pod != "" {
			pod = wl.Namespace + "/" + wl.Pod
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\n", shortID(wl.ID), wl.Name, pod, wl.Image, wl.CgroupID, orDash(wl.Policy), wl.Mode,
			wl.Lost, wl.Unaggregated, wl.UnparsedDNS)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, wl := range st.Workloads {
		if len(wl.Unreachable) == 0 {
			continue
		}
		fmt.Fprintf(w, "\npolicy %s on %s: armed with these parts failed closed (denied in enforce, reported in audit):\n", wl.Policy, orDash(wl.Name))
		for _, u := range wl.Unreachable {
			fmt.Fprintf(w, "  %s\n", u)
		}
	}
	for _, file := range slices.Sorted(maps.Keys(st.Problems)) {
		fmt.Fprintf(w, "\nrejected policy file %s (previous version in force):\n%s\n", file, st.Problems[file])
	}
	return nil
}
