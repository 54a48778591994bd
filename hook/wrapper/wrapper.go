// Package wrapper is the runc wrapper's (bulwark-runc's) configuration
// file: `bulwark install docker` writes it and the wrapper reads it at
// every runc call. It is apart from package hook so that the OCI hook,
// which imports that, does not carry a TOML decoder.
package wrapper

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/bulwarkhq/bulwark/hook"
)

// File names the wrapper's settings, a TOML file beside the
// bulwark-runc executable, written by `bulwark install docker`. The
// wrapper takes no arguments of its own: Docker runs a runtime that has
// runtimeArgs through a shell script it generates, which costs each of the
// four runc calls of a container about a millisecond.
const File = hook.WrapperBinary + ".toml"

// Config is what the wrapper's File holds.
type Config struct {
	// Runc is the real runc (looked up in PATH when not absolute).
	Runc string `toml:"runc"`
	// Hook is the bulwark-oci-hook executable the wrapper's hook runs.
	Hook string `toml:"hook"`
	// Options are the hook's settings.
	hook.Options
}

// Default is the wrapper's configuration when the wrapper in directory
// dir has no File: runc from PATH, the hook beside it, hook.DefaultOptions.
func Default(dir string) Config {
	return Config{Runc: "runc", Hook: filepath.Join(dir, hook.HookBinary), Options: hook.DefaultOptions()}
}

// Read reads the File at path over Default (of path's directory); a
// missing file leaves the defaults. A key it does not know is an error: it
// may be a misspelt setting the wrapper would otherwise ignore.
func Read(path string) (Config, error) {
	c := Default(filepath.Dir(path))
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

// Encode returns c as the content of a File.
func (c Config) Encode() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Settings of " + hook.WrapperBinary + ", Docker's \"bulwark\" runtime, written by `bulwark install docker`.\n")
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
