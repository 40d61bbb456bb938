package eventbus

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Mode selects the broker(s) the bus uses.
type Mode string

// The modes; see the package documentation.
const (
	ModeInternal Mode = "internal"
	ModeExternal Mode = "external"
	ModeBoth     Mode = "both"
)

// Defaults, as KubeEdge's where it has one.
const (
	DefaultInternalAddress = "127.0.0.1:1884"
	DefaultExternalURL     = "tcp://127.0.0.1:1883"
	DefaultConnectTimeout  = 10 * time.Second
	// DefaultMaxPayloadBytes bounds one message. Twin, state and membership documents are a
	// few KiB; uploads go to the cloud through the outbox, base64-encoded in a wire message,
	// and 256 KiB keeps such a message far below the wire's 8 MiB cap while leaving room
	// for small binary readings. Raise it for apps that upload larger records.
	DefaultMaxPayloadBytes = 256 << 10
	// MaxMaxPayloadBytes is the largest accepted setting: the outbox holds each upload as
	// one message, and the wire caps a message at 8 MiB.
	MaxMaxPayloadBytes = 4 << 20
	// maxPasswordFileBytes bounds the password file read.
	maxPasswordFileBytes = 4 << 10
)

// Config configures the EventBus. Start from [Default]; zero values are taken literally.
type Config struct {
	// Mode is internal, external or both.
	Mode Mode `json:"mode" yaml:"mode"`
	// Internal is the embedded broker (modes internal and both).
	Internal InternalConfig `json:"internal" yaml:"internal"`
	// External is the broker edgecore connects to (modes external and both).
	External ExternalConfig `json:"external" yaml:"external"`
	// MaxPayloadBytes is the largest message payload accepted, in both directions.
	MaxPayloadBytes int `json:"maxPayloadBytes" yaml:"maxPayloadBytes"`
	// QoS is the quality of service edgecore subscribes with on the external broker: the
	// highest QoS at which it receives (0, 1 or 2). Publishes carry their own QoS.
	QoS byte `json:"qos" yaml:"qos"`
}

// InternalConfig configures the embedded broker.
type InternalConfig struct {
	// Address is the host:port the broker listens on. Anonymous clients may publish and
	// subscribe to everything (as KubeEdge), so keep it on loopback; another address works
	// but is logged as a warning. Port 0 picks a free port.
	Address string `json:"address" yaml:"address"`
}

// ExternalConfig configures the connection to an external broker.
type ExternalConfig struct {
	// URL is the broker's address: tcp:// or mqtt:// for plain MQTT, ssl://, tls://,
	// mqtts:// or tcps:// for MQTT over TLS, with a port.
	URL string `json:"url" yaml:"url"`
	// ClientID is edgecore's MQTT client id; empty means "edgecore-<host name>".
	ClientID string `json:"clientID,omitempty" yaml:"clientID,omitempty"`
	// Username and PasswordFile authenticate edgecore. The password is read from the file
	// (trailing newline removed) so that it stays out of the configuration.
	Username     string `json:"username,omitempty" yaml:"username,omitempty"`
	PasswordFile string `json:"passwordFile,omitempty" yaml:"passwordFile,omitempty"`
	// TLS applies to the TLS schemes only.
	TLS TLSConfig `json:"tls" yaml:"tls"`
	// ConnectTimeout bounds one connection attempt, and the wait for the broker's answer to
	// a subscribe.
	ConnectTimeout metav1.Duration `json:"connectTimeout" yaml:"connectTimeout"`
}

// TLSConfig holds PEM files for a TLS connection to the external broker.
type TLSConfig struct {
	// CAFile holds the CA certificates the broker's certificate must chain to; empty means
	// the system's roots.
	CAFile string `json:"caFile,omitempty" yaml:"caFile,omitempty"`
	// CertFile and KeyFile are edgecore's client certificate and key, both or neither.
	CertFile string `json:"certFile,omitempty" yaml:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty" yaml:"keyFile,omitempty"`
	// ServerName overrides the host name checked in the broker's certificate.
	ServerName string `json:"serverName,omitempty" yaml:"serverName,omitempty"`
}

func (t TLSConfig) isSet() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != ""
}

// Default returns KubeEdge's defaults: the internal broker on 127.0.0.1:1884.
func Default() Config {
	return Config{
		Mode:     ModeInternal,
		Internal: InternalConfig{Address: DefaultInternalAddress},
		External: ExternalConfig{
			URL:            DefaultExternalURL,
			ConnectTimeout: metav1.Duration{Duration: DefaultConnectTimeout},
		},
		MaxPayloadBytes: DefaultMaxPayloadBytes,
		QoS:             0,
	}
}

func (c *Config) usesInternal() bool { return c.Mode == ModeInternal || c.Mode == ModeBoth }
func (c *Config) usesExternal() bool { return c.Mode == ModeExternal || c.Mode == ModeBoth }

// Validate reports every invalid setting, each naming its key. The settings of a broker
// the mode does not use are not checked.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch c.Mode {
	case ModeInternal, ModeExternal, ModeBoth:
	case "":
		add("mode: empty; want internal, external or both")
	default:
		add("mode %q: want internal, external or both", c.Mode)
	}
	if c.MaxPayloadBytes < 1 || c.MaxPayloadBytes > MaxMaxPayloadBytes {
		add("maxPayloadBytes %d: want 1-%d", c.MaxPayloadBytes, MaxMaxPayloadBytes)
	}
	if c.QoS > 2 {
		add("qos %d: want 0, 1 or 2", c.QoS)
	}
	var internalPort string
	if c.usesInternal() {
		host, port, err := net.SplitHostPort(c.Internal.Address)
		switch {
		case err != nil:
			add("internal.address %q: want host:port: %v", c.Internal.Address, err)
		case !validPort(port, true):
			add("internal.address %q: port %q: want 0-65535", c.Internal.Address, port)
		case host != "" && host != "localhost" && net.ParseIP(host) == nil:
			add("internal.address %q: host: want an IP address or localhost", c.Internal.Address)
		default:
			internalPort = port
		}
	}
	if c.usesExternal() {
		errs = append(errs, c.External.validate()...)
		if c.Mode == ModeBoth && internalPort != "" && internalPort != "0" {
			if u, err := url.Parse(c.External.URL); err == nil && u.Port() == internalPort && isLocalHost(u.Hostname()) {
				add("external.url %q: the internal broker listens on the same address (%s); an external broker in mode both must be another broker", c.External.URL, c.Internal.Address)
			}
		}
	}
	return errors.Join(errs...)
}

func (e *ExternalConfig) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	useTLS := false
	u, err := url.Parse(e.URL)
	switch {
	case e.URL == "":
		add("external.url: empty; want e.g. %s", DefaultExternalURL)
	case err != nil:
		add("external.url %q: %v", e.URL, err)
	default:
		switch u.Scheme {
		case "tcp", "mqtt":
		case "ssl", "tls", "mqtts", "tcps":
			useTLS = true
		default:
			add("external.url %q: scheme %q: want tcp, mqtt, ssl, tls, mqtts or tcps", e.URL, u.Scheme)
		}
		if u.Hostname() == "" || !validPort(u.Port(), false) {
			add("external.url %q: want scheme://host:port with a port 1-65535", e.URL)
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			add("external.url %q: want only scheme://host:port (credentials go in username and passwordFile)", e.URL)
		}
	}
	if len(e.ClientID) > maxTopicBytes {
		add("external.clientID: %d bytes; MQTT allows at most %d", len(e.ClientID), maxTopicBytes)
	}
	if e.PasswordFile != "" {
		if e.Username == "" {
			add("external.passwordFile: set without external.username; MQTT sends a password only with a user name")
		}
		errs = append(errs, checkFile("external.passwordFile", e.PasswordFile)...)
	}
	if e.TLS.isSet() && !useTLS && err == nil && e.URL != "" {
		add("external.tls: set, but external.url %q is not a TLS URL (use ssl://, tls://, mqtts:// or tcps://)", e.URL)
	}
	if (e.TLS.CertFile == "") != (e.TLS.KeyFile == "") {
		add("external.tls: certFile and keyFile go together; set both or neither")
	}
	errs = append(errs, checkFile("external.tls.caFile", e.TLS.CAFile)...)
	errs = append(errs, checkFile("external.tls.certFile", e.TLS.CertFile)...)
	errs = append(errs, checkFile("external.tls.keyFile", e.TLS.KeyFile)...)
	if d := e.ConnectTimeout.Duration; d <= 0 {
		add("external.connectTimeout %s: want a positive duration", d)
	}
	return errs
}

func checkFile(key, path string) []error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return []error{fmt.Errorf("%s: %w", key, err)}
	case !fi.Mode().IsRegular():
		return []error{fmt.Errorf("%s %q: not a regular file", key, path)}
	}
	return nil
}

func validPort(p string, zeroOK bool) bool {
	n, err := strconv.Atoi(p)
	if err != nil || n > 65535 || n < 0 {
		return false
	}
	return n > 0 || zeroOK
}

func isLocalHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}
