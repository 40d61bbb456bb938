//go:build !linux

package probe

import "net"

// probeDialer is a plain dialer where SO_LINGER is not set (edge nodes run Linux).
func probeDialer() *net.Dialer { return &net.Dialer{} }
