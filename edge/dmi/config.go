package dmi

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// DefaultSocket is where KubeEdge mappers look for the edge's DMI server.
const DefaultSocket = "/etc/kubeedge/dmi.sock"

// maxSocketPath is the size of sun_path on Linux: longer paths cannot be bound or dialled.
const maxSocketPath = 108

// Config configures the DMI server. Start from [DefaultConfig].
type Config struct {
	// Socket is the unix socket the server listens on.
	Socket string `json:"socket" yaml:"socket"`
	// Group, if set, owns the socket (a group name or a numeric gid), so that mappers
	// running as that group may connect; the socket is mode 0660.
	Group string `json:"group,omitempty" yaml:"group,omitempty"`
	// MaxRecvMsgSize bounds one request, in bytes.
	MaxRecvMsgSize int `json:"maxRecvMsgSize" yaml:"maxRecvMsgSize"`
	// MaxConcurrentStreams bounds the requests in flight on one connection.
	MaxConcurrentStreams uint32 `json:"maxConcurrentStreams" yaml:"maxConcurrentStreams"`
	// RequestsPerSecond and Burst limit all requests together (a unix socket has no peer
	// identity to limit by); requests over the limit are answered ResourceExhausted.
	RequestsPerSecond float64 `json:"requestsPerSecond" yaml:"requestsPerSecond"`
	Burst             int     `json:"burst" yaml:"burst"`
	// CallTimeout bounds one call to a mapper.
	CallTimeout time.Duration `json:"callTimeout" yaml:"callTimeout"`
	// RetryMin and RetryMax bound the backoff between failed pushes to a mapper.
	RetryMin time.Duration `json:"retryMin" yaml:"retryMin"`
	RetryMax time.Duration `json:"retryMax" yaml:"retryMax"`
}

// DefaultConfig returns the configuration edgecore uses unless told otherwise.
func DefaultConfig() Config {
	return Config{
		Socket:               DefaultSocket,
		MaxRecvMsgSize:       4 << 20,
		MaxConcurrentStreams: 64,
		RequestsPerSecond:    200,
		Burst:                400,
		CallTimeout:          10 * time.Second,
		RetryMin:             500 * time.Millisecond,
		RetryMax:             time.Minute,
	}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.Socket == "" || !filepath.IsAbs(c.Socket):
		errs = append(errs, fmt.Errorf("dmi: socket %q must be an absolute path", c.Socket))
	case len(c.Socket) > maxSocketPath:
		errs = append(errs, fmt.Errorf("dmi: socket %q is longer than %d bytes", c.Socket, maxSocketPath))
	}
	if c.MaxRecvMsgSize < 1024 || c.MaxRecvMsgSize > 64<<20 {
		errs = append(errs, fmt.Errorf("dmi: maxRecvMsgSize %d must be between 1 KiB and 64 MiB", c.MaxRecvMsgSize))
	}
	if c.MaxConcurrentStreams == 0 {
		errs = append(errs, errors.New("dmi: maxConcurrentStreams must be positive"))
	}
	if c.RequestsPerSecond <= 0 || c.Burst < 1 {
		errs = append(errs, fmt.Errorf("dmi: requestsPerSecond (%v) and burst (%d) must be positive", c.RequestsPerSecond, c.Burst))
	}
	if c.CallTimeout <= 0 {
		errs = append(errs, fmt.Errorf("dmi: callTimeout %v must be positive", c.CallTimeout))
	}
	if c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		errs = append(errs, fmt.Errorf("dmi: retryMin (%v) must be positive and at most retryMax (%v)", c.RetryMin, c.RetryMax))
	}
	return errors.Join(errs...)
}
