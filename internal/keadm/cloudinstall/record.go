package cloudinstall

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/skerry-io/skerry/internal/keadm/statefile"
)

// recordFile is init's record, in the state directory: what reset removes from the host.
const recordFile = "cloudcore-init.json"

// maxRecordSize bounds the record; it holds a few paths.
const maxRecordSize = 64 << 10

// record is what a process-mode init left on this host.
type record struct {
	Mode Mode `json:"mode"`
	// Binary is the cloudcore that was started; the service is found by it.
	Binary string `json:"binary"`
	// ConfigFile is the cloudcore.yaml init wrote.
	ConfigFile string `json:"configFile"`
	// CreatedDirs are the directories init created, parents first; reset removes them when empty.
	CreatedDirs []string `json:"createdDirs,omitempty"`
}

// parseRecord decodes a record strictly. Reset deletes the files it names, so it accepts only
// absolute clean paths, and a config file named cloudcore.yaml.
func parseRecord(data []byte) (*record, error) {
	if len(data) > maxRecordSize {
		return nil, fmt.Errorf("over %d bytes", maxRecordSize)
	}
	var r record
	if err := statefile.DecodeStrict(data, &r); err != nil {
		return nil, err
	}
	if r.Mode != ModeProcess {
		return nil, fmt.Errorf("mode %q, want %q", r.Mode, ModeProcess)
	}
	var errs []error
	absClean := func(what, p string) {
		if !statefile.SafePath(p) {
			errs = append(errs, fmt.Errorf("%s %q: want an absolute clean path", what, p))
		}
	}
	absClean("binary", r.Binary)
	absClean("configFile", r.ConfigFile)
	if filepath.Base(r.ConfigFile) != ConfigFileName {
		errs = append(errs, fmt.Errorf("configFile %q: want a file named %s", r.ConfigFile, ConfigFileName))
	}
	for _, d := range r.CreatedDirs {
		absClean("createdDirs", d)
	}
	return &r, errors.Join(errs...)
}

// readRecord reads the record in stateDir; a missing one is (nil, nil).
func readRecord(stateDir string) (*record, error) {
	p := filepath.Join(stateDir, recordFile)
	data, err := statefile.Read(p, maxRecordSize)
	if data == nil || err != nil {
		return nil, err
	}
	r, err := parseRecord(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (remove it by hand if it is not keadm's)", p, err)
	}
	return r, nil
}

// writeRecord writes r to stateDir atomically.
func writeRecord(stateDir string, r *record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return statefile.WriteAtomic(filepath.Join(stateDir, recordFile), append(data, '\n'), 0o600)
}

// mkdirAllRecorded is os.MkdirAll that returns the directories it created, parents first.
func mkdirAllRecorded(dir string, perm os.FileMode) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		return nil, err
	}
	slices.Reverse(missing)
	return missing, nil
}
