package main

import (
	"fmt"

	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
	"github.com/spf13/cobra"
)

// newCreateCmd is the parent of the create subcommands, one per noun.
func newCreateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create documents from others (policies from fingerprints)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCreatePolicyCmd())
	return cmd
}

func newCreatePolicyCmd() *cobra.Command {
	var files []string
	var output, socket string
	var opts policy.CreateOptions
	var from collector.Filter
	cmd := &cobra.Command{
		Use:   "policy (-f FINGERPRINTS... | --image IMAGE | --service CGROUP [--since 24h]) [--name N] [--mode audit|enforce] [--include-imageid] [-o yaml|json]",
		Short: "Create one workload policy from the fingerprints of a workload's instances",
		Long: `Create policy merges every fingerprint in the files (each file may hold
several documents; a FingerprintGroup, as spyctl prints them, gives all its
fingerprints, and a SpyderbatBaseline counts as one) into one policy that
allows what any instance did. The
policy is in audit mode unless --mode enforce is given, and raises a
high-severity red flag on every deviation. Arguments after the flags are
further fingerprint files; "-" reads standard input.

With --image or --service the fingerprints come from the collector instead:
every instance of the image (a reference without a tag means every tag) or
of the service cgroup seen within --since.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Mode != policy.ModeAudit && opts.Mode != policy.ModeEnforce {
				return fmt.Errorf("--mode %q: want %s or %s", opts.Mode, policy.ModeAudit, policy.ModeEnforce)
			}
			files = append(files, args...)
			if from.Image != "" || from.Service != "" {
				if len(files) > 0 {
					return fmt.Errorf("give fingerprint files or --image/--service, not both")
				}
				return createFromCollector(cmd, socket, from, opts, output)
			}
			if from.Since != 0 {
				return fmt.Errorf("--since applies to --image and --service only")
			}
			if len(files) == 0 {
				return fmt.Errorf("no fingerprints: give -f FILE, --image IMAGE or --service CGROUP")
			}
			docs, err := loadFiles(cmd.InOrStdin(), files)
			if err != nil {
				return err
			}
			fps := make([]*policy.Fingerprint, 0, len(docs))
			for _, d := range docs {
				switch {
				case d.Fingerprint != nil: // also each of a FingerprintGroup's
					fps = append(fps, d.Fingerprint)
				case d.Policy != nil && d.Kind == policy.KindSpyderbatBaseline:
					// A baseline is what its workload did: read it as
					// a fingerprint, as spyctl does.
					fps = append(fps, &policy.Fingerprint{APIVersion: policy.APIVersionSpyderbat,
						Kind: policy.KindSpyderbatFingerprint, Metadata: d.Policy.Metadata, Spec: d.Policy.Spec})
				default:
					return fmt.Errorf("%s: a %s, not a fingerprint", d.Pos, d.Kind)
				}
			}
			p, err := policy.PolicyFromFingerprints(fps, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", culprit(docs, fps, opts), err)
			}
			return policy.Encode(cmd.OutOrStdout(), output, p)
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&files, "file", "f", nil, "fingerprint files (repeatable)")
	f.StringVar(&opts.Name, "name", "", "policy name (default: the image or service)")
	f.StringVar(&opts.Mode, "mode", policy.ModeAudit, "policy mode: audit or enforce")
	f.BoolVar(&opts.IncludeImageID, "include-imageid", false, "keep the image ID in the container selector")
	f.StringVarP(&output, "output", "o", policy.FormatYAML, "output format: yaml or json")
	f.StringVar(&from.Image, "image", "", "use the collector's fingerprints of this image")
	f.StringVar(&from.Service, "service", "", "use the collector's fingerprints of this service cgroup")
	f.DurationVar(&from.Since, "since", 0, "with --image/--service: only fingerprints seen within this long (default: all retained)")
	collectorSocketFlag(cmd, &socket)
	return cmd
}

// createFromCollector creates a policy from every fingerprint the
// collector holds for the image or service of from.
func createFromCollector(cmd *cobra.Command, socket string, from collector.Filter, opts policy.CreateOptions, output string) error {
	groups, err := collector.NewQueryClient(socket).Fingerprints(from)
	if err != nil {
		return fmt.Errorf("read fingerprints: %w", err)
	}
	var fps []*policy.Fingerprint
	for _, g := range groups {
		for i := range g.Instances {
			fps = append(fps, &g.Instances[i].Fingerprint)
		}
	}
	if len(fps) == 0 {
		what := "--image " + from.Image
		if from.Service != "" {
			what = "--service " + from.Service
		}
		return fmt.Errorf("the collector holds no fingerprint for %s", what)
	}
	p, err := policy.PolicyFromFingerprints(fps, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "created policy %q from %d fingerprints\n", p.Metadata.Name, len(fps))
	return policy.Encode(cmd.OutOrStdout(), output, p)
}

// culprit names the file position of the first fingerprint that makes
// creating a policy fail (the files as a whole when only all of them fail).
func culprit(docs []policy.Document, fps []*policy.Fingerprint, opts policy.CreateOptions) string {
	for i := 1; i < len(fps); i++ {
		if _, err := policy.PolicyFromFingerprints(fps[:i], opts); err != nil {
			return docs[i-1].Pos.String()
		}
	}
	return docs[len(docs)-1].Pos.String()
}
