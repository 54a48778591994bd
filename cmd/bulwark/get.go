package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/policy"
)

func newGetCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "get", Short: "List deviations and flags"}
	var socket, output string
	dev := &cobra.Command{
		Use:   "deviations",
		Short: "List the deviations the agent recorded",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ds, err := agent.NewClient(socket).Deviations()
			if err != nil {
				return err
			}
			if output != "table" {
				docs := make([]any, len(ds))
				for i := range ds {
					docs[i] = &ds[i]
				}
				return policy.Encode(cmd.OutOrStdout(), output, docs...)
			}
			return printDeviations(cmd.OutOrStdout(), ds)
		},
	}
	flags := &cobra.Command{
		Use:   "flags",
		Short: "List the flags response actions raised",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fs, err := agent.NewClient(socket).Flags()
			if err != nil {
				return err
			}
			if output != "table" {
				docs := make([]any, len(fs))
				for i := range fs {
					docs[i] = &fs[i]
				}
				return policy.Encode(cmd.OutOrStdout(), output, docs...)
			}
			return printFlags(cmd.OutOrStdout(), fs)
		},
	}
	for _, c := range []*cobra.Command{dev, flags} {
		agentSocketFlag(c, &socket)
		c.Flags().StringVarP(&output, "output", "o", "table", "output format: table, yaml or json")
		cmd.AddCommand(c)
	}
	return cmd
}

func printDeviations(w io.Writer, ds []policy.Deviation) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tMODE\tKIND\tVERDICT\tWORKLOAD\tWHAT")
	for _, d := range ds {
		ev := d.Metadata.Event
		if ev == nil {
			ev = &policy.Event{}
		}
		what := ev.Exe
		if ev.Kind != "exec" {
			what = fmt.Sprintf("%s %s:%d -> %s:%d", ev.Protocol, ev.SrcAddr, ev.SrcPort, ev.DstAddr, ev.DstPort)
		}
		wl := d.Metadata.ContainerName
		if d.Metadata.PodName != "" {
			wl = d.Metadata.Namespace + "/" + d.Metadata.PodName + "/" + wl
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Metadata.PolicyName, d.Metadata.PolicyMode, ev.Kind, ev.Verdict, wl, what)
	}
	return tw.Flush()
}

func printFlags(w io.Writer, fs []policy.Flag) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLASS\tSEVERITY\tPOLICY\tWORKLOAD\tAGE")
	for _, f := range fs {
		age := time.Since(time.Unix(0, int64(f.Metadata.Timestamp*1e9))).Round(time.Second)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Metadata.Class, f.Metadata.Severity, f.Metadata.PolicyName, f.Metadata.Workload, age)
	}
	return tw.Flush()
}
