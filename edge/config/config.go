// Package config is edgecore's versioned configuration file (kind EdgeCore).
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skerry-io/skerry/pkg/configfile"
)

// Meta is the apiVersion and kind of an edgecore configuration file.
var Meta = configfile.TypeMeta{APIVersion: "edgecore.config.skerry.io/v1alpha1", Kind: "EdgeCore"}

// EdgeCore is the configuration of edgecore. Modules add their sections as they are built.
type EdgeCore struct {
	configfile.TypeMeta `json:",inline"`
	// NodeName is this node's name in Kubernetes; it defaults to the host name in lower case.
	NodeName string `json:"nodeName"`
	// DataDir holds the node's state: its store, certificates and pod data.
	DataDir string `json:"dataDir"`
	// Runtime is the container runtime edgecore runs pods on.
	Runtime Runtime `json:"runtime"`
}

// Runtime is the CRI container runtime.
type Runtime struct {
	// Endpoint is the CRI gRPC endpoint, a unix:// URL.
	Endpoint string `json:"endpoint"`
}

// Default returns the configuration used where the file says nothing.
func Default() *EdgeCore {
	host, _ := os.Hostname()
	return &EdgeCore{
		TypeMeta: Meta,
		NodeName: strings.ToLower(host),
		DataDir:  "/var/lib/skerry/edgecore",
		Runtime:  Runtime{Endpoint: "unix:///run/containerd/containerd.sock"},
	}
}

// Validate reports every invalid setting, each naming its key.
func (c *EdgeCore) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("nodeName: empty; set it to this node's Kubernetes name"))
	} else if msgs := validation.IsDNS1123Subdomain(c.NodeName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("nodeName %q: %s", c.NodeName, strings.Join(msgs, "; ")))
	}
	if !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("dataDir %q: want an absolute path", c.DataDir))
	}
	if err := validateCRIEndpoint(c.Runtime.Endpoint); err != nil {
		errs = append(errs, fmt.Errorf("runtime.endpoint: %w", err))
	}
	return errors.Join(errs...)
}

func validateCRIEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil {
		return err
	}
	if u.Scheme != "unix" || u.Host != "" || !filepath.IsAbs(u.Path) {
		return fmt.Errorf("%q: want unix:///absolute/path.sock", ep)
	}
	return nil
}
