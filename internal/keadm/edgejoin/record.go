package edgejoin

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/skerry-io/skerry/internal/keadm/service"
	"github.com/skerry-io/skerry/internal/keadm/statefile"
)

// RecordFile is join's record in the state dir.
const RecordFile = "edge.json"

// maxRecord bounds the record read.
const maxRecord = 1 << 20

// Record is what join created, so reset removes exactly that.
type Record struct {
	NodeName   string `json:"nodeName"`
	ConfigPath string `json:"configPath"`
	// ConfigDirCreated: join made the config dir; reset removes it when it is left empty.
	ConfigDirCreated bool   `json:"configDirCreated,omitempty"`
	DataDir          string `json:"dataDir"`
	// DataDirCreated: join made the data dir, so reset removes all of it. Otherwise
	// DataDirBefore lists the entries it held before, which reset keeps.
	DataDirCreated  bool     `json:"dataDirCreated,omitempty"`
	DataDirBefore   []string `json:"dataDirBefore,omitempty"`
	StateDirCreated bool     `json:"stateDirCreated,omitempty"`
	RuntimeEndpoint string   `json:"runtimeEndpoint"`
	CgroupRoot      string   `json:"cgroupRoot,omitempty"`
	DMISocket       string   `json:"dmiSocket,omitempty"`
	// Service is how edgecore runs; empty Name when it runs in the foreground.
	Service service.Spec `json:"service"`
}

func recordPath(stateDir string) string { return filepath.Join(stateDir, RecordFile) }

// LoadRecord reads the record in stateDir; (nil, nil) when there is none.
func LoadRecord(stateDir string) (*Record, error) {
	p := recordPath(stateDir)
	b, err := statefile.Read(p, maxRecord)
	if b == nil || err != nil {
		return nil, err
	}
	r, err := parseRecord(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return r, nil
}

// parseRecord decodes and checks a record: every path reset may delete must be absolute and
// below the root, so a damaged file cannot send reset after "/" or a relative path.
func parseRecord(b []byte) (*Record, error) {
	if len(b) > maxRecord {
		return nil, fmt.Errorf("larger than %d bytes", maxRecord)
	}
	var r Record
	if err := statefile.DecodeStrict(b, &r); err != nil {
		return nil, fmt.Errorf("not a keadm join record: %w", err)
	}
	var errs []error
	for key, p := range map[string]string{"configPath": r.ConfigPath, "dataDir": r.DataDir} {
		if !statefile.SafePath(p) {
			errs = append(errs, fmt.Errorf("%s %q: want an absolute path below /", key, p))
		}
	}
	for key, p := range map[string]string{"dmiSocket": r.DMISocket, "cgroupRoot": r.CgroupRoot, "service.stateDir": r.Service.StateDir} {
		if p != "" && !statefile.SafePath(p) {
			errs = append(errs, fmt.Errorf("%s %q: want an absolute path below /", key, p))
		}
	}
	for _, e := range r.DataDirBefore {
		if e == "" || strings.ContainsRune(e, '/') || e == "." || e == ".." {
			errs = append(errs, fmt.Errorf("dataDirBefore %q: want a plain file name", e))
		}
	}
	if r.NodeName == "" {
		errs = append(errs, errors.New("nodeName: empty"))
	}
	return &r, errors.Join(errs...)
}

func saveRecord(stateDir string, r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return statefile.WriteAtomic(recordPath(stateDir), append(b, '\n'), 0o600)
}
