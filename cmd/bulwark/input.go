package main

import (
	"fmt"
	"io"
	"os"

	"github.com/bulwarkhq/bulwark/policy"
)

// readInput reads file, or standard input for "-"; name is what messages
// call it ("<stdin>" for standard input).
func readInput(stdin io.Reader, file string) (name string, data []byte, err error) {
	if file == "-" {
		data, err = io.ReadAll(stdin)
		if err != nil {
			err = fmt.Errorf("read standard input: %w", err)
		}
		return "<stdin>", data, err
	}
	data, err = os.ReadFile(file)
	return file, data, err
}

// loadFiles loads every document of the files in order; "-" is standard
// input. Errors name the file (and the line, for problems in it).
func loadFiles(stdin io.Reader, files []string) ([]policy.Document, error) {
	var out []policy.Document
	for _, file := range files {
		name, data, err := readInput(stdin, file)
		if err != nil {
			return nil, err
		}
		docs, err := policy.Load(name, data)
		if err != nil {
			return nil, err // names the file: problems start with file:line:column
		}
		out = append(out, docs...)
	}
	return out, nil
}
