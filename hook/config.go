package hook

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// ConfigFile names the wrapper's settings, a TOML file beside the
// bulwark-runc executable, written by `bulwark install docker`. The
// wrapper takes no arguments of its own: Docker runs a runtime that has
// runtimeArgs through a shell script it generates, which costs each of the
// four runc calls of a container about a millisecond.
const ConfigFile = WrapperBinary + ".toml"

// WrapperConfig is what the wrapper's ConfigFile holds.
type WrapperConfig struct {
	// Runc is the real runc (looked up in PATH when not absolute).
	Runc string `toml:"runc"`
	// Hook is the bulwark-oci-hook executable the wrapper's hook runs.
	Hook string `toml:"hook"`
	// Options are the hook's settings.
	Options
}

// DefaultWrapperConfig is the wrapper's configuration when the wrapper
// in directory dir has no ConfigFile: runc from PATH, the hook beside it,
// DefaultOptions.
func DefaultWrapperConfig(dir string) WrapperConfig {
	return WrapperConfig{Runc: "runc", Hook: filepath.Join(dir, HookBinary), Options: DefaultOptions()}
}

// ReadWrapperConfig reads the ConfigFile at path over
// DefaultWrapperConfig (of path's directory); a missing file leaves the
// defaults. A key it does not know is an error: it may be a misspelt
// setting the wrapper would otherwise ignore.
func ReadWrapperConfig(path string) (WrapperConfig, error) {
	c := DefaultWrapperConfig(filepath.Dir(path))
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	md, err := toml.Decode(string(data), &c)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if extra := md.Undecoded(); len(extra) > 0 {
		keys := make([]string, len(extra))
		for i, k := range extra {
			keys[i] = k.String()
		}
		return c, fmt.Errorf("%s: unknown settings %s", path, strings.Join(keys, ", "))
	}
	return c, nil
}

// Encode returns c as the content of a ConfigFile.
func (c WrapperConfig) Encode() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Settings of " + WrapperBinary + ", Docker's \"bulwark\" runtime, written by `bulwark install docker`.\n")
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
