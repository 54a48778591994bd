package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bulwarkhq/bulwark/hook"
	"github.com/bulwarkhq/bulwark/hook/wrapper"
	"github.com/bulwarkhq/bulwark/install/edit"
)

// dockerRuntime is the name Bulwark's runtime is registered under in
// daemon.json (`docker run --runtime bulwark`).
const dockerRuntime = "bulwark"

// dockerInstall is what `bulwark install docker` writes.
type dockerInstall struct {
	path        string // daemon.json
	runc        string
	hook        hook.Options
	makeDefault bool
}

func newInstallDockerCmd() *cobra.Command {
	var in dockerInstall
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "docker",
		Short: "Register Bulwark's runc wrapper as a Docker runtime in daemon.json",
		Long: "Adds the \"bulwark\" runtime (bulwark-runc, which gives each container Bulwark's OCI\n" +
			"hook, bulwark-oci-hook; both installed beside bulwark; through its C front,\n" +
			"bulwark-runc-front, when that is installed too) to Docker's daemon.json, keeping\n" +
			"every other key, and with --default makes it the default runtime. The wrapper's\n" +
			"settings (the flags below) go to " + wrapper.File + " beside it, not to runtimeArgs, which\n" +
			"would make Docker run it through a shell script. Modified files are kept as\n" +
			"FILE.bulwark-backup. Running it again changes nothing. Restart dockerd to apply it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := resolveHook(cmd, &in.hook); err != nil {
				return err
			}
			wrapperExe := besideBulwark(in, hook.WrapperBinary)
			if err := isExecutable(wrapperExe); err != nil {
				return err
			}
			old, err := readDaemonJSON(in.path)
			if err != nil {
				return err
			}
			out, err := installDocker(old, in)
			if err != nil {
				return fmt.Errorf("%s: %w", in.path, err)
			}
			cfg, err := wrapperConfig(in).Encode()
			if err != nil {
				return err
			}
			cfgPath := wrapperConfigPath(wrapperExe)
			oldCfg, err := edit.Read(cfgPath)
			if err != nil {
				return err
			}
			plan := append(daemonJSONPlan(in.path, old, out),
				edit.Change{Path: cfgPath, Old: oldCfg, New: cfg, Perm: 0o644, Backup: true})
			return carryOut(cmd.OutOrStdout(), plan.Changed(), dryRun, "restart dockerd to apply it")
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.path, "daemon-json", "/etc/docker/daemon.json", "Docker's daemon configuration")
	f.BoolVar(&in.makeDefault, "default", false, "make bulwark Docker's default runtime")
	f.BoolVar(&dryRun, "dry-run", false, "print the new daemon.json instead of writing it")
	f.StringVar(&in.runc, "runc", "runc", "the real runc the wrapper runs")
	hookFlags(f, &in.hook)
	return cmd
}

func newUninstallDockerCmd() *cobra.Command {
	var path string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "docker",
		Short: "Remove Bulwark's runtime from Docker's daemon.json",
		Long: "Removes the \"bulwark\" runtime and, when it is the default, the default-runtime key\n" +
			"(Docker's default, runc, applies again), keeping every other key, and the wrapper's\n" +
			wrapper.File + ". Restart dockerd to apply it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			old, err := readDaemonJSON(path)
			if err != nil {
				return err
			}
			out, wrapperExe, err := uninstallDocker(old)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			plan := daemonJSONPlan(path, old, out)
			if wrapperExe != "" {
				cfgPath := wrapperConfigPath(wrapperExe)
				oldCfg, err := edit.Read(cfgPath)
				if err != nil {
					return err
				}
				if oldCfg != nil {
					plan = append(plan, edit.Change{Path: cfgPath, Old: oldCfg})
				}
			}
			return carryOut(cmd.OutOrStdout(), plan.Changed(), dryRun, "restart dockerd to apply it")
		},
	}
	cmd.Flags().StringVar(&path, "daemon-json", "/etc/docker/daemon.json", "Docker's daemon configuration")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the new daemon.json instead of writing it")
	return cmd
}

// readDaemonJSON reads daemon.json; a missing file reads as empty.
func readDaemonJSON(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// parseDaemonJSON decodes daemon.json's top level, keeping each value as
// written. Invalid JSON is reported with its line and column.
func parseDaemonJSON(data []byte) (map[string]json.RawMessage, error) {
	doc := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(data)) == 0 {
		return doc, nil
	}
	err := json.Unmarshal(data, &doc)
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := lineCol(data, syn.Offset-1) // Offset is just past the bad byte
		return nil, fmt.Errorf("line %d, column %d: %v (file left untouched)", line, col, syn)
	case errors.As(err, &typ):
		line, col := lineCol(data, typ.Offset)
		return nil, fmt.Errorf("line %d, column %d: the file is not a JSON object (file left untouched)", line, col)
	case err != nil:
		return nil, fmt.Errorf("%v (file left untouched)", err)
	}
	return doc, nil
}

// lineCol turns a byte offset of data into a 1-based line and column.
func lineCol(data []byte, off int64) (int, int) {
	off = max(0, min(off, int64(len(data))))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// runtimesOf decodes daemon.json's "runtimes" object.
func runtimesOf(doc map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	rts := map[string]json.RawMessage{}
	if raw, ok := doc["runtimes"]; ok {
		if err := json.Unmarshal(raw, &rts); err != nil {
			return nil, fmt.Errorf("\"runtimes\" is not an object (file left untouched)")
		}
	}
	return rts, nil
}

// installDocker returns daemon.json data with Bulwark's runtime added.
func installDocker(data []byte, in dockerInstall) ([]byte, error) {
	doc, err := parseDaemonJSON(data)
	if err != nil {
		return nil, err
	}
	rts, err := runtimesOf(doc)
	if err != nil {
		return nil, err
	}
	rt, err := json.Marshal(dockerRuntimeEntry{Path: dockerRuntimePath(in)})
	if err != nil {
		return nil, err
	}
	rts[dockerRuntime] = rt
	if doc["runtimes"], err = json.Marshal(rts); err != nil {
		return nil, err
	}
	if in.makeDefault {
		doc["default-runtime"], _ = json.Marshal(dockerRuntime)
	}
	return json.MarshalIndent(doc, "", "  ")
}

// dockerRuntimeEntry is Bulwark's runtime in daemon.json's "runtimes".
type dockerRuntimeEntry struct {
	Path string `json:"path"`
}

// dockerRuntimePath is the executable Docker runs as Bulwark's runtime:
// the wrapper's C front when it is installed beside bulwark (Docker's
// other runc calls then skip a Go executable's start), else the wrapper.
func dockerRuntimePath(in dockerInstall) string {
	if front := besideBulwark(in, hook.FrontBinary); isExecutable(front) == nil {
		return front
	}
	return besideBulwark(in, hook.WrapperBinary)
}

// wrapperConfig is the wrapper's configuration in.
func wrapperConfig(in dockerInstall) wrapper.Config {
	return wrapper.Config{Runc: in.runc, Hook: besideBulwark(in, hook.HookBinary), Options: in.hook}
}

// wrapperConfigPath is where the wrapper at path reads its configuration:
// beside the executable the link resolves to, as os.Executable names it.
func wrapperConfigPath(wrapperExe string) string {
	if real, err := filepath.EvalSymlinks(wrapperExe); err == nil {
		wrapperExe = real
	}
	return filepath.Join(filepath.Dir(wrapperExe), wrapper.File)
}

// uninstallDocker returns daemon.json data without Bulwark's runtime, and
// the wrapper it named ("" when none).
func uninstallDocker(data []byte) (out []byte, wrapperExe string, err error) {
	doc, err := parseDaemonJSON(data)
	if err != nil {
		return nil, "", err
	}
	rts, err := runtimesOf(doc)
	if err != nil {
		return nil, "", err
	}
	var rt dockerRuntimeEntry
	if json.Unmarshal(rts[dockerRuntime], &rt) == nil {
		wrapperExe = rt.Path
	}
	delete(rts, dockerRuntime)
	if len(rts) == 0 {
		delete(doc, "runtimes")
	} else if doc["runtimes"], err = json.Marshal(rts); err != nil {
		return nil, "", err
	}
	var def string
	if json.Unmarshal(doc["default-runtime"], &def) == nil && def == dockerRuntime {
		delete(doc, "default-runtime")
	}
	out, err = json.MarshalIndent(doc, "", "  ")
	return out, wrapperExe, err
}

// daemonJSONPlan plans writing out to path (an atomic write with a
// backup), unless it means the same as old.
func daemonJSONPlan(path string, old, out []byte) edit.Plan {
	out = append(out, '\n')
	var plan edit.Plan
	if !sameJSON(old, out) {
		if old == nil {
			plan = append(plan, edit.Change{Dir: filepath.Dir(path), DirOp: edit.MkdirDir})
		}
		plan = append(plan, edit.Change{Path: path, Old: old, New: out, Perm: 0o644, Backup: true})
	}
	return plan
}

// sameJSON reports whether a and b hold equal JSON values (an absent file
// equals an empty object).
func sameJSON(a, b []byte) bool {
	var x, y any
	if len(bytes.TrimSpace(a)) == 0 {
		a = []byte("{}")
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// besideBulwark is the path of name beside in's bulwark executable (that
// executable for "").
func besideBulwark(in dockerInstall, name string) string {
	if name == "" {
		return in.hook.Bulwark
	}
	return filepath.Join(filepath.Dir(in.hook.Bulwark), name)
}

// isExecutable fails unless path is an executable file: a runtime told
// to run a missing one fails every container.
func isExecutable(path string) error {
	fi, err := os.Stat(path)
	if err == nil && (!fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0) {
		err = errors.New("not an executable file")
	}
	if err != nil {
		return fmt.Errorf("%s: %w (make build builds it; install the three executables side by side)", path, err)
	}
	return nil
}
