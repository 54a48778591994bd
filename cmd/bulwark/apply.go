package main

import (
	"bytes"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/agent"
	"github.com/bulwarkhq/bulwark/policy"
)

func newApplyCmd() *cobra.Command {
	var socket, file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Validate policies and apply them through the agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, data, err := readInput(cmd.InOrStdin(), file)
			if err != nil {
				return err
			}
			// The agent validates again; here the problems name the file.
			if _, err := policy.Load(name, data); err != nil {
				return err
			}
			names, err := agent.NewClient(socket).ApplyPolicy(bytes.NewReader(data))
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintf(cmd.OutOrStdout(), "policy/%s applied\n", n)
			}
			return nil
		},
	}
	agentSocketFlag(cmd, &socket)
	cmd.Flags().StringVarP(&file, "file", "f", "", "policy file (- for standard input)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}
