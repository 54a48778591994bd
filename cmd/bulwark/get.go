package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/collector"
	"github.com/bulwarkhq/bulwark/policy"
)

// Output formats of get besides policy.FormatYAML and policy.FormatJSON.
const (
	formatTable = "table"
	formatWide  = "wide"
)

// getOptions are the flags every get subcommand takes.
type getOptions struct {
	socket string
	output string
	filter collector.Filter
}

// getter lists one kind of stored record: as a table (wide or not) or as
// documents.
type getter struct {
	use, short string
	aliases    []string
	// list queries the collector and returns the table rows (header first)
	// and the documents for yaml/json.
	list func(q *collector.QueryClient, f collector.Filter, wide bool, now time.Time) (rows [][]string, docs []any, err error)
}

func newGetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "get",
		Short: "List what the collector stored: workloads, fingerprints, policies, deviations, flags",
	}
	for _, g := range []getter{
		{"workloads", "List workload instances and the policy each runs under", []string{"workload", "wl"}, listWorkloads},
		{"fingerprints", "List fingerprints, grouped by image or service", []string{"fingerprint", "fp"}, listFingerprints},
		{"policies", "List the policies agents have in force", []string{"policy"}, listPolicies},
		{"deviations", "List deviations (distinct, with counts), oldest first", []string{"deviation", "dev"}, listDeviations},
		{"flags", "List the flags response actions raised", []string{"flag"}, listFlags},
	} {
		cmd.AddCommand(newGetSubCmd(g))
	}
	return cmd
}

func newGetSubCmd(g getter) *cobra.Command {
	var o getOptions
	cmd := &cobra.Command{
		Use:     g.use + " [--image I] [--service CGROUP] [--namespace N] [--policy P] [--since 24h] [-o table|wide|yaml|json]",
		Aliases: g.aliases,
		Short:   g.short,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			wide := o.output == formatWide
			switch o.output {
			case formatTable, formatWide, policy.FormatYAML, policy.FormatJSON:
			default:
				return fmt.Errorf("unknown output format %q (want table, wide, yaml or json)", o.output)
			}
			rows, docs, err := g.list(collector.NewQueryClient(o.socket), o.filter, wide, time.Now())
			if err != nil {
				return fmt.Errorf("get %s: %w", g.use, err)
			}
			if o.output == policy.FormatYAML || o.output == policy.FormatJSON {
				if len(docs) == 0 {
					if o.output == policy.FormatJSON {
						_, err := io.WriteString(cmd.OutOrStdout(), "[]\n")
						return err
					}
					return nil
				}
				return policy.Encode(cmd.OutOrStdout(), o.output, docs...)
			}
			if len(rows) <= 1 {
				fmt.Fprintf(cmd.ErrOrStderr(), "No %s found.\n", g.use)
				return nil
			}
			return writeTable(cmd.OutOrStdout(), rows)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.filter.Image, "image", "", "only this image (a reference or glob; without a tag: every tag)")
	f.StringVar(&o.filter.Service, "service", "", "only this service cgroup (or glob)")
	f.StringVar(&o.filter.Namespace, "namespace", "", "only this namespace (or glob)")
	f.StringVar(&o.filter.Policy, "policy", "", "only what concerns this policy (name or glob)")
	f.DurationVar(&o.filter.Since, "since", 0, "only what was seen within this long, e.g. 24h (default: all retained)")
	f.StringVarP(&o.output, "output", "o", formatTable, "output format: table, wide, yaml or json")
	collectorSocketFlag(cmd, &o.socket)
	return cmd
}

// writeTable writes rows as aligned columns.
func writeTable(w io.Writer, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// age formats how long ago t was, kubectl-like: 45s, 3m, 2h, 5d, 1y.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 24*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d < 365*24*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return strconv.Itoa(int(d/(365*24*time.Hour))) + "y"
}

// orDash shows an empty cell as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortID shortens a container ID as runtimes display it.
func shortID(id string) string {
	if i := strings.Index(id, "://"); i >= 0 {
		id = id[i+3:]
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

func listWorkloads(q *collector.QueryClient, f collector.Filter, wide bool, now time.Time) ([][]string, []any, error) {
	wls, err := q.Workloads(f)
	if err != nil {
		return nil, nil, err
	}
	head := []string{"NAMESPACE", "NAME", "IMAGE", "POLICY", "MODE", "STATE", "AGE"}
	if wide {
		head = append(head, "CONTAINER", "POD", "AGENT", "CGROUP")
	}
	rows := [][]string{head}
	docs := make([]any, len(wls))
	for i := range wls {
		wl := &wls[i]
		docs[i] = wl
		name := wl.ContainerName
		if name == "" {
			name = wl.ServiceName
		}
		image := wl.Image
		if wl.Type == policy.TypeLinuxService {
			image = wl.ServiceCgroup
		}
		row := []string{orDash(wl.Namespace), orDash(name), orDash(image), orDash(wl.PolicyName), orDash(wl.PolicyMode), wl.State, age(now, wl.Started)}
		if wide {
			row = append(row, orDash(shortID(wl.ContainerID)), orDash(wl.PodName), wl.Agent, orDash(wl.Cgroup))
		}
		rows = append(rows, row)
	}
	return rows, docs, nil
}

// addRules adds each network rule of nr, encoded, to the set rules.
func addRules(rules map[string]bool, nr []policy.NetworkRule) {
	for _, r := range nr {
		b, err := json.Marshal(r)
		if err == nil {
			rules[string(b)] = true
		}
	}
}

// specSummary counts the distinct process exes and ingress and egress
// rules of specs.
func specSummary(specs ...*policy.Spec) (procs, ingress, egress int) {
	exes := map[string]bool{}
	in, out := map[string]bool{}, map[string]bool{}
	var walk func([]policy.ProcessNode)
	walk = func(nodes []policy.ProcessNode) {
		for _, n := range nodes {
			for _, e := range n.Exe {
				exes[e] = true
			}
			walk(n.Children)
			if n.PolicyNode != nil {
				walk(n.PolicyNode.Children)
			}
		}
	}
	for _, s := range specs {
		walk(s.ProcessPolicy)
		if s.NetworkPolicy != nil {
			addRules(in, s.NetworkPolicy.Ingress)
			addRules(out, s.NetworkPolicy.Egress)
		}
	}
	return len(exes), len(in), len(out)
}

func listFingerprints(q *collector.QueryClient, f collector.Filter, wide bool, now time.Time) ([][]string, []any, error) {
	groups, err := q.Fingerprints(f)
	if err != nil {
		return nil, nil, err
	}
	head := []string{"IMAGE/SERVICE", "TYPE", "INSTANCES", "PROCESSES", "INGRESS", "EGRESS", "LATEST"}
	if wide {
		head = append(head, "FIRST", "CONTAINERS", "AGENTS")
	}
	rows := [][]string{head}
	var docs []any
	for _, g := range groups {
		var specs []*policy.Spec
		var names []string
		agents := map[string]bool{}
		for i := range g.Instances {
			fp := &g.Instances[i].Fingerprint
			docs = append(docs, fp)
			specs = append(specs, &fp.Spec)
			names = append(names, orDash(fp.Metadata.ContainerName))
			agents[g.Instances[i].Agent] = true
		}
		procs, in, out := specSummary(specs...)
		what := g.Image
		if what == "" {
			what = g.Service
		}
		if what == "" {
			what = strings.TrimPrefix(g.Key, "name:")
		}
		row := []string{what, orDash(g.Type), strconv.Itoa(len(g.Instances)), strconv.Itoa(procs), strconv.Itoa(in), strconv.Itoa(out), age(now, g.LastSeen)}
		if wide {
			row = append(row, age(now, g.FirstSeen), strings.Join(names, ","), strings.Join(slices.Sorted(maps.Keys(agents)), ","))
		}
		rows = append(rows, row)
	}
	return rows, docs, nil
}

// selectorText describes what a policy selects.
func selectorText(s *policy.Spec) string {
	switch {
	case s.ContainerSelector != nil && s.ContainerSelector.Image != "":
		return "image=" + s.ContainerSelector.Image
	case s.ContainerSelector != nil && s.ContainerSelector.ContainerName != "":
		return "container=" + s.ContainerSelector.ContainerName
	case s.ServiceSelector != nil && s.ServiceSelector.Cgroup != "":
		return "cgroup=" + s.ServiceSelector.Cgroup
	case s.ServiceSelector != nil && s.ServiceSelector.Name != "":
		return "service=" + s.ServiceSelector.Name
	}
	return "-"
}

func listPolicies(q *collector.QueryClient, f collector.Filter, wide bool, now time.Time) ([][]string, []any, error) {
	pols, err := q.Policies(f)
	if err != nil {
		return nil, nil, err
	}
	head := []string{"NAME", "TYPE", "MODE", "SELECTOR", "PROCESSES", "INGRESS", "EGRESS", "AGE"}
	if wide {
		head = append(head, "AGENT", "UID")
	}
	rows := [][]string{head}
	var docs []any
	printed := map[string]string{} // name → JSON of the policy already in docs
	for i := range pols {
		sp := &pols[i]
		p := &sp.Policy
		if b, err := json.Marshal(p); err == nil {
			// The same policy in force on several agents is one document.
			if printed[p.Metadata.Name] != string(b) {
				printed[p.Metadata.Name] = string(b)
				docs = append(docs, p)
			}
		}
		procs, in, out := specSummary(&p.Spec)
		row := []string{p.Metadata.Name, orDash(p.Metadata.Type), orDash(p.Spec.Mode), selectorText(&p.Spec),
			strconv.Itoa(procs), strconv.Itoa(in), strconv.Itoa(out), age(now, sp.FirstSeen)}
		if wide {
			row = append(row, sp.Agent, orDash(p.Metadata.UID))
		}
		rows = append(rows, row)
	}
	return rows, docs, nil
}

// workloadText names the workload a deviation happened in.
func workloadText(md *policy.Metadata) string {
	name := md.ContainerName
	if name == "" {
		name = md.ServiceName
	}
	if name == "" {
		name = md.Cgroup
	}
	if md.PodName != "" {
		name = md.PodName + "/" + name
	}
	if md.Namespace != "" {
		name = md.Namespace + "/" + name
	}
	return orDash(name)
}

// printableName is a resolved name as a line may show it: quoted unless
// it is a plain host name, so a crafted record cannot write control
// characters to the terminal.
func printableName(name string) string {
	if _, ok := policy.LearnedDNSName(name); ok {
		return name
	}
	return strconv.Quote(name)
}

// deviationWhat summarises what a deviation did.
func deviationWhat(d *policy.Deviation) (kind, verdict, what string) {
	ev := d.Metadata.Event
	if ev == nil {
		return "-", "-", "-"
	}
	switch ev.Kind {
	case "exec":
		what = ev.Exe
		if ev.ParentNode != "" {
			what += " (under " + ev.ParentNode + ")"
		}
	case "connect":
		what = fmt.Sprintf("%s -> %s:%d/%s", orDash(ev.Exe), ev.DstAddr, ev.DstPort, ev.Protocol)
		if ev.DNSName != "" {
			what += " (" + printableName(ev.DNSName) + ")"
		}
	case "accept":
		what = fmt.Sprintf("%s:%d/%s <- %s", orDash(ev.Exe), ev.DstPort, ev.Protocol, ev.SrcAddr)
	default:
		what = ev.Exe
	}
	return orDash(ev.Kind), orDash(ev.Verdict), orDash(what)
}

func listDeviations(q *collector.QueryClient, f collector.Filter, wide bool, now time.Time) ([][]string, []any, error) {
	devs, err := q.Deviations(f)
	if err != nil {
		return nil, nil, err
	}
	head := []string{"POLICY", "MODE", "KIND", "VERDICT", "WORKLOAD", "WHAT", "COUNT", "LAST"}
	if wide {
		head = append(head, "FIRST", "AGENTS", "CHECKSUM")
	}
	rows := [][]string{head}
	docs := make([]any, len(devs))
	for i := range devs {
		sd := &devs[i]
		d := &sd.Deviation
		docs[i] = d
		kind, verdict, what := deviationWhat(d)
		row := []string{orDash(d.Metadata.PolicyName), orDash(d.Metadata.PolicyMode), kind, verdict, workloadText(&d.Metadata),
			what, strconv.FormatUint(sd.Count, 10), age(now, sd.LastSeen)}
		if wide {
			row = append(row, age(now, sd.FirstSeen), strings.Join(sd.Agents, ","), orDash(d.Metadata.Checksum))
		}
		rows = append(rows, row)
	}
	return rows, docs, nil
}

func listFlags(q *collector.QueryClient, f collector.Filter, wide bool, now time.Time) ([][]string, []any, error) {
	flags, err := q.Flags(f)
	if err != nil {
		return nil, nil, err
	}
	head := []string{"CLASS", "SEVERITY", "POLICY", "WORKLOAD", "AGE"}
	if wide {
		head = append(head, "AGENT", "DEVIATION", "DESCRIPTION")
	}
	rows := [][]string{head}
	docs := make([]any, len(flags))
	for i := range flags {
		sf := &flags[i]
		md := &sf.Flag.Metadata
		docs[i] = &sf.Flag
		when := sf.LastSeen
		if md.Timestamp > 0 {
			when = time.Unix(0, int64(md.Timestamp*1e9))
		}
		row := []string{orDash(md.Class), orDash(md.Severity), orDash(md.PolicyName), orDash(md.Workload), age(now, when)}
		if wide {
			row = append(row, sf.Agent, orDash(md.DeviationUID), orDash(md.Description))
		}
		rows = append(rows, row)
	}
	return rows, docs, nil
}
