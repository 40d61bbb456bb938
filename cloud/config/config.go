// Package config is cloudcore's versioned configuration file (kind CloudCore).
package config

import (
	"errors"
	"fmt"
	"os"

	"github.com/skerry-io/skerry/pkg/configfile"
)

// Meta is the apiVersion and kind of a cloudcore configuration file.
var Meta = configfile.TypeMeta{APIVersion: "cloudcore.config.skerry.io/v1alpha1", Kind: "CloudCore"}

// CloudCore is the configuration of cloudcore. Modules add their sections as they are built.
type CloudCore struct {
	configfile.TypeMeta `json:",inline"`
	// KubeAPI says how cloudcore reaches the Kubernetes API server.
	KubeAPI KubeAPI `json:"kubeAPI"`
}

// KubeAPI is the connection to the Kubernetes API server.
type KubeAPI struct {
	// Kubeconfig is the path of a kubeconfig file; empty means the in-cluster service account.
	Kubeconfig string `json:"kubeconfig"`
	// QPS and Burst bound cloudcore's request rate to the API server.
	QPS   float32 `json:"qps"`
	Burst int     `json:"burst"`
}

// Default returns the configuration used where the file says nothing.
func Default() *CloudCore {
	return &CloudCore{
		TypeMeta: Meta,
		KubeAPI:  KubeAPI{QPS: 100, Burst: 200},
	}
}

// Validate reports every invalid setting, each naming its key.
func (c *CloudCore) Validate() error {
	var errs []error
	if p := c.KubeAPI.Kubeconfig; p != "" {
		if st, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("kubeAPI.kubeconfig: %w", err))
		} else if st.IsDir() {
			errs = append(errs, fmt.Errorf("kubeAPI.kubeconfig: %s is a directory, want a kubeconfig file", p))
		}
	}
	if c.KubeAPI.QPS <= 0 {
		errs = append(errs, fmt.Errorf("kubeAPI.qps: %v, want > 0", c.KubeAPI.QPS))
	}
	if c.KubeAPI.Burst < 1 || float32(c.KubeAPI.Burst) < c.KubeAPI.QPS {
		errs = append(errs, fmt.Errorf("kubeAPI.burst: %d, want >= 1 and >= kubeAPI.qps", c.KubeAPI.Burst))
	}
	return errors.Join(errs...)
}
