package main

import (
	"fmt"
	"io"

	"github.com/bulwarkhq/bulwark/policy"
	"github.com/spf13/cobra"
)

func newMergeCmd() *cobra.Command {
	var file, output string
	var with []string
	cmd := &cobra.Command{
		Use:   "merge -f POLICY --with FILE... [-o yaml|json]",
		Short: "Fold deviations or fingerprints into a policy (add-only) and print it",
		Long: `Merge adds to a policy what deviations, fingerprints or other policies allow
and it does not: new process nodes (grafted under existing ones for a
deviation's policyNode), exes, eusers, listening sockets and network peers.
The policy's selectors, mode, response and options are kept and nothing it
allows is removed. The merged policy is written to standard output.
Arguments after the flags are further --with files; "-" reads standard input.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, merged, err := mergeFiles(cmd.InOrStdin(), file, append(with, args...))
			if err != nil {
				return err
			}
			return policy.Encode(cmd.OutOrStdout(), output, merged)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the policy file")
	f.StringSliceVar(&with, "with", nil, "deviation, fingerprint or policy files to merge (repeatable)")
	f.StringVarP(&output, "output", "o", policy.FormatYAML, "output format: yaml or json")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// mergeFiles loads the policy in file and every document of the with
// files, and merges them.
func mergeFiles(stdin io.Reader, file string, with []string) (base, merged *policy.WorkloadPolicy, err error) {
	if len(with) == 0 {
		return nil, nil, fmt.Errorf("nothing to merge: give --with FILE")
	}
	docs, err := loadFiles(stdin, []string{file})
	if err != nil {
		return nil, nil, err
	}
	if len(docs) != 1 || docs[0].Policy == nil {
		return nil, nil, fmt.Errorf("%s: must hold exactly one policy, holds %d documents", file, len(docs))
	}
	base = docs[0].Policy
	docs, err = loadFiles(stdin, with)
	if err != nil {
		return nil, nil, err
	}
	for _, d := range docs {
		if d.Flag != nil {
			return nil, nil, fmt.Errorf("%s: a %s cannot be merged into a policy", d.Pos, d.Kind)
		}
	}
	merged, err = policy.Merge(base, docs...)
	if err != nil {
		// Name the first document the merge fails on.
		for i := range docs {
			if _, ierr := policy.Merge(base, docs[:i+1]...); ierr != nil {
				return nil, nil, fmt.Errorf("%s: %w", docs[i].Pos, ierr)
			}
		}
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	return base, merged, nil
}

// loadFiles loads every document of the files in order; "-" is standard
// input. Errors name the file (and the line, for problems in it).
func loadFiles(stdin io.Reader, files []string) ([]policy.Document, error) {
	var out []policy.Document
	for _, name := range files {
		var docs []policy.Document
		var err error
		if name == "-" {
			data, rerr := io.ReadAll(stdin)
			if rerr != nil {
				return nil, fmt.Errorf("read standard input: %w", rerr)
			}
			docs, err = policy.Load("<stdin>", data)
		} else {
			docs, err = policy.LoadFile(name)
		}
		if err != nil {
			return nil, err // names the file: problems start with file:line:column
		}
		out = append(out, docs...)
	}
	return out, nil
}
