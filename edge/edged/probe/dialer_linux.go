package probe

import (
	"net"
	"syscall"
)

// probeDialer sets SO_LINGER to 1s, as the kubelet does, so probe connections are reset
// instead of piling up in TIME-WAIT on a node that probes many pods often.
func probeDialer() *net.Dialer {
	return &net.Dialer{
		Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				_ = syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 1})
			})
		},
	}
}
