// Package configfile loads the versioned YAML configuration files of Skerry's binaries.
//
// Decoding is strict on purpose: an unknown or misspelt key, a duplicate key, a second YAML
// document or a wrong apiVersion/kind is an error naming the problem, never a setting that is
// silently ignored. Files are read with a size cap so a wrong path (a device, a huge log) cannot
// exhaust memory.
package configfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	yamlv2 "go.yaml.in/yaml/v2"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// MaxSize is the largest configuration file accepted, in bytes.
const MaxSize = 1 << 20

// ErrTooLarge is returned for input over MaxSize.
var ErrTooLarge = fmt.Errorf("configuration larger than %d bytes", MaxSize)

// TypeMeta identifies the schema of a configuration document.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// Load reads the file at path and decodes it strictly into out (see Decode).
func Load(path string, want TypeMeta, out any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return fmt.Errorf("read configuration %s: %w", path, err)
	}
	if err := Decode(data, want, out); err != nil {
		return fmt.Errorf("configuration %s: %w", path, err)
	}
	return nil
}

// Decode decodes one YAML (or JSON) document into out, which should already hold the defaults:
// keys present in data override them, absent keys keep them. The document's apiVersion and kind
// must equal want.
func Decode(data []byte, want TypeMeta, out any) error {
	if len(data) > MaxSize {
		return ErrTooLarge
	}
	if err := singleDocument(data); err != nil {
		return err
	}
	var got TypeMeta
	if err := yaml.Unmarshal(data, &got); err != nil {
		return fmt.Errorf("not a YAML mapping: %w", err)
	}
	if got.APIVersion != want.APIVersion || got.Kind != want.Kind {
		return fmt.Errorf("apiVersion %q, kind %q: want apiVersion %q, kind %q", got.APIVersion, got.Kind, want.APIVersion, want.Kind)
	}
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return fmt.Errorf("invalid: %w", err)
	}
	// sigs.k8s.io/json names the full path of an unknown field and matches keys case-sensitively,
	// as the Kubernetes API server does.
	strictErrs, err := kjson.UnmarshalStrict(j, out)
	if err != nil {
		return fmt.Errorf("invalid: %w", err)
	}
	if len(strictErrs) > 0 {
		return fmt.Errorf("invalid: %w", errors.Join(strictErrs...))
	}
	return nil
}

// singleDocument refuses a stream with more than one YAML document: the others would be ignored.
func singleDocument(data []byte) error {
	dec := yamlv2.NewDecoder(bytes.NewReader(data))
	for n := 0; ; n++ {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return errors.New("empty configuration")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("not valid YAML: %w", err)
		}
		if n == 1 {
			return errors.New("more than one YAML document; a configuration file holds exactly one")
		}
	}
}

// Marshal renders a configuration as YAML, for --defaultconfig.
func Marshal(cfg any) ([]byte, error) {
	// Through JSON first so the output uses the json tags, like the decoder does.
	j, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}
