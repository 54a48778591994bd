package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/agent"
)

func newDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "delete", Short: "Delete objects"}
	var socket string
	pol := &cobra.Command{
		Use:   "policy NAME...",
		Short: "Delete policies through the agent",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := agent.NewClient(socket)
			for _, n := range args {
				if err := c.DeletePolicy(n); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "policy/%s deleted\n", n)
			}
			return nil
		},
	}
	agentSocketFlag(pol, &socket)
	cmd.AddCommand(pol)
	return cmd
}
