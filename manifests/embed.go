// Package manifests holds the Kubernetes manifests keadm installs: the generated CRDs and
// cloudcore's RBAC. They are embedded so keadm works from its binary alone, without this tree.
package manifests

import (
	"embed"
	"io/fs"
)

//go:embed crds/*.yaml
var crds embed.FS

// RBAC is rbac/cloudcore.yaml: cloudcore's namespace, ServiceAccount, roles and bindings.
//
//go:embed rbac/cloudcore.yaml
var RBAC []byte

// File is one embedded manifest file.
type File struct {
	Name string // path inside this directory, e.g. crds/devices.kubeedge.io_devices.yaml
	Data []byte
}

// CRDs returns the CustomResourceDefinition files in file-name order.
func CRDs() ([]File, error) {
	paths, err := fs.Glob(crds, "crds/*.yaml") // sorted
	if err != nil {
		return nil, err
	}
	files := make([]File, 0, len(paths))
	for _, p := range paths {
		b, err := crds.ReadFile(p)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Name: p, Data: b})
	}
	return files, nil
}
