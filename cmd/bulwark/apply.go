package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

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

// readInput reads file, or standard input for "-"; name is what messages
// call it ("<stdin>" for standard input).
func readInput(stdin io.Reader, file string) (name string, data []byte, err error) {
	if file == "-" {
		data, err = io.ReadAll(stdin)
		if err != nil {
			err = fmt.Errorf("read standard input: %w", err)
		}
		return "<stdin>", data, err
	}
	data, err = os.ReadFile(file)
	return file, data, err
}
