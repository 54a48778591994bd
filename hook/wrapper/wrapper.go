// Package wrapper is the runc wrapper's (bulwark-runc's) configuration
// file: `bulwark install docker` writes it and the wrapper reads it at
// every runc call. It is JSON, which the wrapper decodes anyway (the
// bundle's config.json): a TOML decoder's package init alone cost each
// runc call 0.1 ms.
package wrapper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/bulwarkhq/bulwark/hook"
)

// File names the wrapper's settings, a JSON file beside the bulwark-runc
// executable, written by `bulwark install docker`. The wrapper takes no
// arguments of its own: Docker runs a runtime that has runtimeArgs
// through a shell script it generates, which costs each of the four runc
// calls of a container about a millisecond.
const File = hook.WrapperBinary + ".json"

// Config is the wrapper's configuration.
type Config struct {
	// Runc is the real runc (looked up in PATH when not absolute).
	Runc string
	// Hook is the bulwark-oci-hook executable the wrapper's hook runs.
	Hook string
	// Options are the hook's settings.
	hook.Options
}

// file is Config as File holds it.
type file struct {
	Runc       string `json:"runc"`
	Hook       string `json:"hook"`
	Socket     string `json:"socket"`
	PolicyDir  string `json:"policyDir"`
	DockerHost string `json:"dockerHost,omitempty"`
	Timeout    string `json:"timeout"` // a Go duration: "5s"
	Bulwark    string `json:"bulwark"`
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
	f := c.file()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	timeout, err := time.ParseDuration(f.Timeout)
	if err != nil {
		return c, fmt.Errorf("%s: timeout: %w", path, err)
	}
	return Config{Runc: f.Runc, Hook: f.Hook, Options: hook.Options{Socket: f.Socket, PolicyDir: f.PolicyDir,
		DockerHost: f.DockerHost, Timeout: timeout, Bulwark: f.Bulwark}}, nil
}

func (c Config) file() file {
	return file{Runc: c.Runc, Hook: c.Hook, Socket: c.Socket, PolicyDir: c.PolicyDir, DockerHost: c.DockerHost,
		Timeout: c.Timeout.String(), Bulwark: c.Bulwark}
}

// Encode returns c as the content of a File.
func (c Config) Encode() ([]byte, error) {
	out, err := json.MarshalIndent(c.file(), "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
