package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/install/containerd"
	"github.com/bulwarkhq/bulwark/install/crio"
	"github.com/bulwarkhq/bulwark/install/edit"
	"github.com/bulwarkhq/bulwark/install/systemd"
	"github.com/bulwarkhq/bulwark/plugin"
)

// newInstallCmd is `bulwark install TARGET`: one subcommand per target,
// each in the file named after it (containerd, CRI-O and systemd here;
// docker and kubernetes in install_docker.go and install_kubernetes.go).
func newInstallCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Set a node up for Bulwark: NRI in the container runtime, systemd units",
		Long: `Each target changes only what Bulwark needs, shows it (--dry-run prints the
diff and writes nothing), writes files atomically, keeps a backup of a file
it modifies, and does nothing on a second run. "bulwark uninstall TARGET"
takes out exactly what it put in.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newInstallContainerdCmd(), newInstallCRIOCmd(), newInstallSystemdCmd(), newInstallDockerCmd(),
		newInstallKubernetesCmd())
	return cmd
}

// newUninstallCmd is `bulwark uninstall TARGET`.
func newUninstallCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Take out what bulwark install put in",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newUninstallContainerdCmd(), newUninstallCRIOCmd(), newUninstallSystemdCmd(), newUninstallDockerCmd())
	return cmd
}

// carryOut prints plan as a diff (dryRun) or applies it and says what
// changed; then, when something did change, the next step.
func carryOut(w io.Writer, plan edit.Plan, dryRun bool, next string) error {
	if len(plan) == 0 {
		fmt.Fprintln(w, "nothing changed: already done")
		return nil
	}
	if dryRun {
		fmt.Fprint(w, plan.Diff())
		fmt.Fprintln(w, "dry run: nothing written")
		return nil
	}
	if err := plan.Apply(); err != nil {
		return err
	}
	for _, c := range plan {
		switch {
		case c.DirOp == edit.MkdirDir:
			fmt.Fprintln(w, "created", c.Dir)
		case c.DirOp == edit.RemoveDir:
			fmt.Fprintln(w, "removed", c.Dir, "(when empty)")
		case c.New == nil:
			fmt.Fprintln(w, "removed", c.Path)
		case c.Old == nil:
			fmt.Fprintln(w, "wrote", c.Path)
		default:
			fmt.Fprintln(w, "changed", c.Path)
			if c.Backup {
				fmt.Fprintln(w, "  backup of the old file:", c.Path+edit.BackupSuffix)
			}
		}
	}
	if next != "" {
		fmt.Fprintln(w, "next:", next)
	}
	return nil
}

// planCmd builds a target's subcommand: it plans with fn, then prints or
// applies the plan (--dry-run) and says what to do next.
func planCmd(use, short, next string, fn func() (edit.Plan, error)) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plan, err := fn()
			if err != nil {
				return err
			}
			return carryOut(cmd.OutOrStdout(), plan, dryRun, next)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the diff, write nothing")
	return cmd
}

func newInstallContainerdCmd() *cobra.Command {
	var opts containerd.Options
	cmd := planCmd("containerd", "Enable NRI for Bulwark in containerd's configuration (a conf.d drop-in)",
		"restart containerd to load it (systemctl restart containerd)",
		func() (edit.Plan, error) { return containerd.Install(opts) })
	cmd.Long = `Writes conf.d/bulwark.toml next to the configuration file, enabling NRI
(and with --require the default validator with Bulwark as a required
plugin: containers are refused while the agent is not registered, except
in pods annotated ` + plugin.TolerateMissingAnnotation + `: "true"), and
adds it to the file's imports unless an imports glob already loads it.
Version 2, 3 and 4 files; a file that does not parse is refused with its
line and left untouched.`
	containerdFlags(cmd, &opts)
	cmd.Flags().BoolVar(&opts.Require, "require", false, "refuse containers while the Bulwark agent is not registered (NRI default validator; containerd 2.2 and later)")
	return cmd
}

func newUninstallContainerdCmd() *cobra.Command {
	var opts containerd.Options
	cmd := planCmd("containerd", "Remove Bulwark's NRI drop-in and its import from containerd's configuration",
		"restart containerd (systemctl restart containerd)",
		func() (edit.Plan, error) { return containerd.Uninstall(opts) })
	containerdFlags(cmd, &opts)
	return cmd
}

func containerdFlags(cmd *cobra.Command, opts *containerd.Options) {
	f := cmd.Flags()
	f.StringVar(&opts.Config, "config", containerd.DefaultConfig, "containerd's main configuration file")
	f.StringVar(&opts.DropIn, "drop-in", "", "Bulwark's drop-in (default: conf.d/bulwark.toml beside --config)")
}

func newInstallCRIOCmd() *cobra.Command {
	var opts crio.Options
	var o hook.Options
	var ociHook bool
	var cmd *cobra.Command
	cmd = planCmd("crio", "Enable NRI for Bulwark in CRI-O (a crio.conf.d drop-in) and add its OCI hook (hooks.d)",
		"restart CRI-O to load it (systemctl restart crio)",
		func() (edit.Plan, error) {
			if ociHook {
				bin, err := resolveHook(cmd, &o)
				if err != nil {
					return nil, err
				}
				h := hook.Hook(bin, o)
				opts.Hook = &h
			}
			return crio.Install(opts)
		})
	crioFlags(cmd, &opts)
	f := cmd.Flags()
	f.BoolVar(&opts.Require, "require", false, "refuse containers while the Bulwark agent is not registered (NRI default validator; CRI-O 1.34 and later)")
	f.BoolVar(&ociHook, "oci-hook", true, "also write Bulwark's createRuntime hook to the OCI hooks directory, which CRI-O runs for every container")
	hookFlags(f, &o)
	return cmd
}

func newUninstallCRIOCmd() *cobra.Command {
	var opts crio.Options
	cmd := planCmd("crio", "Remove Bulwark's NRI drop-in from CRI-O", "restart CRI-O (systemctl restart crio)",
		func() (edit.Plan, error) { return crio.Uninstall(opts) })
	crioFlags(cmd, &opts)
	return cmd
}

func crioFlags(cmd *cobra.Command, opts *crio.Options) {
	f := cmd.Flags()
	f.StringVar(&opts.Config, "config", crio.DefaultConfig, "CRI-O's main configuration file")
	f.StringVar(&opts.Dir, "dir", crio.DefaultDir, "CRI-O's drop-in directory")
	f.StringVar(&opts.HooksDir, "hooks-dir", crio.DefaultHooksDir, "the OCI hooks directory CRI-O reads")
}

func newInstallSystemdCmd() *cobra.Command {
	var opts systemd.Options
	cmd := planCmd("systemd", "Write the systemd units of the agent and the collector",
		"systemctl daemon-reload && systemctl enable --now bulwark-collector.service bulwark-agent.service",
		func() (edit.Plan, error) { return systemd.Install(opts) })
	cmd.Flags().StringVar(&opts.Dir, "dir", systemd.DefaultDir, "systemd unit directory")
	cmd.Flags().StringVar(&opts.Binary, "binary", systemd.DefaultBinary, "the bulwark executable the units run")
	return cmd
}

func newUninstallSystemdCmd() *cobra.Command {
	var opts systemd.Options
	cmd := planCmd("systemd", "Remove the units bulwark install systemd wrote (disable them first)", "systemctl daemon-reload",
		func() (edit.Plan, error) { return systemd.Uninstall(opts) })
	cmd.Flags().StringVar(&opts.Dir, "dir", systemd.DefaultDir, "systemd unit directory")
	return cmd
}
