//go:build !linux

package nodestatus

import (
	"errors"
	"runtime"
)

// Edge nodes run Linux; these stubs only keep the package building elsewhere (editors,
// cross-platform vet), where the node would report no ephemeral storage and no kernel.

func statfs(string) (fsStats, error) { return fsStats{}, notLinux() }

func unameRelease() (string, error) { return "", notLinux() }

func notLinux() error {
	return errors.New("nodestatus: host facts need Linux, running on " + runtime.GOOS)
}
