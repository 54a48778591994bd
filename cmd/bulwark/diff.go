package main

import (
	"fmt"
	"io"

	"github.com/bulwarkhq/bulwark/policy"
	"github.com/spf13/cobra"
)

// Output formats of diff besides policy.FormatYAML and policy.FormatJSON.
const formatText = "text"

func newDiffCmd() *cobra.Command {
	var file, output string
	var src mergeSources
	cmd := &cobra.Command{
		Use:   "diff -f POLICY (--with FILE... | --with-deviations [--since 24h]) [-o text|yaml|json]",
		Short: "Show what merging deviations or fingerprints into a policy would add",
		Long: `Diff merges like "bulwark merge" and prints what the merge would add to the
policy: new process nodes with their parents, existing nodes that gain exes,
eusers or listening sockets, and newly allowed network peers. It prints
"no changes" when the policy already allows everything. The exit status is
0 either way. Arguments after the flags are further --with files.
--with-deviations diffs against the collector's deviations of the policy
that it does not cover yet, as "bulwark merge --with-deviations" merges.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			src.with = append(src.with, args...)
			base, merged, err := mergeSourcesInto(cmd, file, src)
			if err != nil {
				return err
			}
			return writeDiff(cmd.OutOrStdout(), output, policy.DiffPolicies(base, merged))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the policy file")
	f.StringVarP(&output, "output", "o", formatText, "output format: text, yaml or json")
	src.addFlags(cmd)
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func writeDiff(w io.Writer, format string, d policy.Diff) error {
	if format == formatText {
		if _, err := io.WriteString(w, d.String()); err != nil {
			return fmt.Errorf("write diff: %w", err)
		}
		return nil
	}
	return policy.Encode(w, format, d)
}
