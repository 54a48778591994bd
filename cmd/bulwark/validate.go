package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bulwarkhq/bulwark/policy"
	"github.com/spf13/cobra"
)

func newValidateCmd() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate -f FILE...",
		Short: "Check fingerprints, policies, deviations and flags against the schema",
		Long: `Validate loads every document of every file (YAML or JSON, several documents
per file) and checks it strictly: unknown fields, wrong types, bad CIDRs,
ports, modes, globs, duplicate process ids and the other rules. Every problem
is printed to standard error as "file:line:column: field.path: reason"; each
valid file gets a one-line summary on standard output, after a line for each
default the loader filled in (a policy without spec.mode loads in audit
mode). Unknown metadata keys are kept; spec stays strict. A FingerprintGroup
counts as its fingerprints, a SpyderbatBaseline as a policy. The exit status is 0
when every file is valid and 1 otherwise. "-" reads standard input; arguments
after the flags are further files.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			files = append(files, args...)
			if len(files) == 0 {
				return errors.New("no files: give -f FILE")
			}
			bad := 0
			for _, name := range files {
				if !validateFile(cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), name) {
					bad++
				}
			}
			if bad > 0 {
				return &exitStatus{code: 1, err: fmt.Errorf("%d of %d files invalid", bad, len(files))}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, `file to validate (repeatable; "-" reads standard input)`)
	return cmd
}

// validateFile loads one file, printing its problems to stderr or its
// summary to stdout, and reports whether it is valid.
func validateFile(stdin io.Reader, stdout, stderr io.Writer, file string) bool {
	name, data, err := readInput(stdin, file)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return false
	}
	docs, err := policy.Load(name, data)
	if err != nil {
		var ps policy.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				fmt.Fprintln(stderr, p)
			}
		} else {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		}
		return false
	}
	for _, d := range docs {
		for _, n := range d.Notes {
			fmt.Fprintf(stdout, "%s\n", n)
		}
	}
	fmt.Fprintf(stdout, "%s: %s valid\n", name, summarize(docs))
	return true
}

// summarize counts documents by kind: "1 fingerprint, 2 policies".
func summarize(docs []policy.Document) string {
	var fps, pols, devs, flags int
	for _, d := range docs {
		switch {
		case d.Fingerprint != nil:
			fps++
		case d.Policy != nil:
			pols++
		case d.Deviation != nil:
			devs++
		case d.Flag != nil:
			flags++
		}
	}
	var parts []string
	for _, c := range []struct {
		n              int
		singular, plur string
	}{
		{fps, "fingerprint", "fingerprints"},
		{pols, "policy", "policies"},
		{devs, "deviation", "deviations"},
		{flags, "flag", "flags"},
	} {
		switch {
		case c.n == 1:
			parts = append(parts, "1 "+c.singular)
		case c.n > 1:
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.plur))
		}
	}
	return strings.Join(parts, ", ")
}
