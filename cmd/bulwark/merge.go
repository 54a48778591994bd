package main

import (
	"fmt"
	"io"
	"time"

	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
	"github.com/spf13/cobra"
)

// mergeSources are the documents merged into a policy: files, and with
// withDeviations the collector's deviations of the policy.
type mergeSources struct {
	with           []string
	withDeviations bool
	since          time.Duration
	socket         string
}

// addFlags adds the flags naming the sources to merge.
func (m *mergeSources) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringSliceVar(&m.with, "with", nil, "deviation, fingerprint or policy files to merge (repeatable)")
	f.BoolVar(&m.withDeviations, "with-deviations", false, "merge the collector's deviations of this policy that it does not cover yet")
	f.DurationVar(&m.since, "since", 0, "with --with-deviations: only deviations seen within this long (default: all retained)")
	collectorSocketFlag(cmd, &m.socket)
}

func newMergeCmd() *cobra.Command {
	var file, output string
	var src mergeSources
	cmd := &cobra.Command{
		Use:   "merge -f POLICY (--with FILE... | --with-deviations [--since 24h]) [-o yaml|json]",
		Short: "Fold deviations or fingerprints into a policy (add-only) and print it",
		Long: `Merge adds to a policy what deviations, fingerprints or other policies allow
and it does not: new process nodes (grafted under existing ones for a
deviation's policyNode), exes, eusers, listening sockets and network peers.
The policy's selectors, mode, response and options are kept and nothing it
allows is removed. The merged policy is written to standard output.
Arguments after the flags are further --with files; "-" reads standard input.

--with-deviations merges the deviations the collector holds for this policy
(by name, and by uid when both carry one) that the policy does not cover
yet, oldest first; a deviation that does not fit the policy (say, it names
a process node the policy no longer has) is reported on standard error and
left out.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			src.with = append(src.with, args...)
			_, merged, err := mergeSourcesInto(cmd, file, src)
			if err != nil {
				return err
			}
			return policy.Encode(cmd.OutOrStdout(), output, merged)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the policy file")
	f.StringVarP(&output, "output", "o", policy.FormatYAML, "output format: yaml or json")
	src.addFlags(cmd)
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// mergeSourcesInto loads the policy in file, the documents of the with
// files and, when asked, the collector's uncovered deviations of the
// policy, and merges them.
func mergeSourcesInto(cmd *cobra.Command, file string, src mergeSources) (base, merged *policy.WorkloadPolicy, err error) {
	if len(src.with) == 0 && !src.withDeviations {
		return nil, nil, fmt.Errorf("nothing to merge: give --with FILE or --with-deviations")
	}
	if src.since != 0 && !src.withDeviations {
		return nil, nil, fmt.Errorf("--since applies to --with-deviations only")
	}
	base, err = loadPolicy(cmd.InOrStdin(), file)
	if err != nil {
		return nil, nil, err
	}
	var docs []policy.Document
	if len(src.with) > 0 {
		if docs, err = loadMergeable(cmd.InOrStdin(), src.with); err != nil {
			return nil, nil, err
		}
	}
	if src.withDeviations {
		devs, err := uncoveredDeviations(cmd.ErrOrStderr(), src.socket, base, src.since)
		if err != nil {
			return nil, nil, err
		}
		docs = append(docs, devs...)
	}
	merged, err = mergeDocs(base, file, docs)
	return base, merged, err
}

// uncoveredDeviations returns, oldest first, the collector's deviations of
// policy p that p does not cover and that merge into it; it reports on w
// how many it found and the ones that do not merge.
func uncoveredDeviations(w io.Writer, socket string, p *policy.WorkloadPolicy, since time.Duration) ([]policy.Document, error) {
	stored, err := collector.NewQueryClient(socket).Deviations(collector.Filter{Policy: p.Metadata.Name, Since: since})
	if err != nil {
		return nil, fmt.Errorf("read deviations: %w", err)
	}
	var out []policy.Document
	covered := 0
	for i := range stored {
		d := &stored[i].Deviation
		if !concerns(p, d) {
			continue
		}
		doc := policy.Document{Pos: policy.Position{File: "collector deviation " + d.Metadata.Checksum}, Kind: d.Kind, APIVersion: d.APIVersion, Deviation: d}
		ok, err := policy.Covers(p, d)
		switch {
		case err != nil:
			fmt.Fprintf(w, "left out %s: %v\n", doc.Pos, err)
		case ok:
			covered++
		default:
			out = append(out, doc)
		}
	}
	fmt.Fprintf(w, "%d deviations of policy %q to merge from the collector (%d already covered)\n", len(out), p.Metadata.Name, covered)
	return out, nil
}

// concerns reports whether deviation d was raised against policy p: the
// same name and, when both carry one, the same uid. (The collector is
// asked for the policy's name, but matches it as a glob.)
func concerns(p *policy.WorkloadPolicy, d *policy.Deviation) bool {
	if p.Metadata.Name != d.Metadata.PolicyName {
		return false
	}
	return p.Metadata.UID == "" || d.Metadata.PolicyUID == "" || p.Metadata.UID == d.Metadata.PolicyUID
}

// loadPolicy loads the one policy in file.
func loadPolicy(stdin io.Reader, file string) (*policy.WorkloadPolicy, error) {
	docs, err := loadFiles(stdin, []string{file})
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 || docs[0].Policy == nil {
		return nil, fmt.Errorf("%s: must hold exactly one policy, holds %d documents", file, len(docs))
	}
	return docs[0].Policy, nil
}

// loadMergeable loads the documents of the with files, refusing flags.
func loadMergeable(stdin io.Reader, with []string) ([]policy.Document, error) {
	docs, err := loadFiles(stdin, with)
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		if d.Flag != nil {
			return nil, fmt.Errorf("%s: a %s cannot be merged into a policy", d.Pos, d.Kind)
		}
	}
	return docs, nil
}

// mergeDocs merges docs into base; an error names the first document the
// merge fails on.
func mergeDocs(base *policy.WorkloadPolicy, file string, docs []policy.Document) (*policy.WorkloadPolicy, error) {
	merged, err := policy.Merge(base, docs...)
	if err != nil {
		for i := range docs {
			if _, ierr := policy.Merge(base, docs[:i+1]...); ierr != nil {
				return nil, fmt.Errorf("%s: %w", docs[i].Pos, ierr)
			}
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return merged, nil
}
