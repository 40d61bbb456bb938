// Package config is edgecore's versioned configuration file (kind EdgeCore).
package config

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skerry-io/skerry/edge/dmi"
	"github.com/skerry-io/skerry/edge/eventbus"
	"github.com/skerry-io/skerry/edge/nodestatus"

	"github.com/skerry-io/skerry/pkg/configfile"
)

// Meta is the apiVersion and kind of an edgecore configuration file.
var Meta = configfile.TypeMeta{APIVersion: "edgecore.config.skerry.io/v1alpha1", Kind: "EdgeCore"}

// Defaults of the hub section.
const (
	ProtocolWebSocket = "websocket"
	ProtocolQUIC      = "quic"
	// DefaultBootstrapPort is cloudcore's bootstrap (join and renewal) port; an empty
	// hub.bootstrapServer means hub.server's host on this port.
	DefaultBootstrapPort = "10002"
	DefaultProjectID     = "e632aba927ea4ac2b575ec1603d56f10"
)

// EdgeCore is the configuration of edgecore, the file given with --config.
type EdgeCore struct {
	configfile.TypeMeta `json:",inline"`
	// NodeName is this node's name in Kubernetes; it defaults to the host name in lower case.
	NodeName string `json:"nodeName"`
	// DataDir holds the node's state: its store, certificates and pod data.
	DataDir string `json:"dataDir"`
	// Hub is the node's connection to cloudcore.
	Hub Hub `json:"hub"`
	// Runtime is the container runtime edgecore runs pods on. Today the node status reads
	// its name, version and health from it; pods arrive with the Edged module.
	Runtime Runtime `json:"runtime"`
	// MetaServer is the local Kubernetes-style read API served from the store.
	MetaServer MetaServer `json:"metaServer"`
	// Node describes this node to Kubernetes and sets how often its status and heartbeat go up.
	Node Node `json:"node"`
	// Edged runs the node's pods on the container runtime.
	Edged Edged `json:"edged"`
	// EventBus is the node's MQTT layer: an embedded broker, an external one, or both.
	EventBus EventBus `json:"eventBus"`
	// DeviceTwin keeps the node's device twins, answers the MQTT device topics and serves
	// DMI to mappers. It needs the EventBus.
	DeviceTwin DeviceTwin `json:"deviceTwin"`
}

// EventBus configures edge/eventbus; its keys sit beside enable.
type EventBus struct {
	// Enable runs the EventBus; the device twin needs it.
	Enable          bool `json:"enable"`
	eventbus.Config `json:",inline"`
}

// DeviceTwin configures the device twin and its DMI server.
type DeviceTwin struct {
	// Enable runs the device twin and its DMI server; it needs eventBus.enable.
	Enable bool `json:"enable"`
	// DefaultReportCycle is how often, at most, a device's status goes to the cloud when none
	// of its properties sets reportCycle.
	DefaultReportCycle Duration `json:"defaultReportCycle"`
	// DMI is the gRPC server mappers register with.
	DMI DMI `json:"dmi"`
}

// DMI is the device management interface's unix socket server.
type DMI struct {
	// Socket is the unix socket mappers dial (KubeEdge's default path).
	Socket string `json:"socket"`
	// Group, if set, owns the socket (name or gid) so mappers of that group may connect.
	Group string `json:"group,omitempty"`
	// RequestsPerSecond and Burst limit all mapper requests together.
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	Burst             int     `json:"burst"`
}

// Edged configures the pod runner and its local API.
type Edged struct {
	// Enable runs the node's pods; without it the node reports its status only.
	Enable bool `json:"enable"`
	// CgroupRoot is the cgroup (v1, cgroupfs style) under which each pod gets pod<uid>.
	CgroupRoot string `json:"cgroupRoot"`
	// RelistPeriod is how often the runtime's state is listed (containerd 1.6 has no events).
	RelistPeriod Duration `json:"relistPeriod"`
	// Server is the kubelet-style API (logs, exec, attach, port-forward, stats).
	Server EdgedServer `json:"server"`
	// ImageGC removes unused images when the runtime's image disk fills up.
	ImageGC ImageGC `json:"imageGC"`
	// StaticPodPath is a directory of pod manifests run as static pods, reported to the cloud
	// as mirror pods (edge/edged/staticpods); "" turns static pods off.
	StaticPodPath string `json:"staticPodPath"`
}

// ImageGC bounds the runtime's image disk, as the kubelet's image garbage collector.
type ImageGC struct {
	// HighThresholdPercent of the image disk's capacity starts a collection, which removes
	// unused images until usage is below LowThresholdPercent.
	HighThresholdPercent int `json:"highThresholdPercent"`
	LowThresholdPercent  int `json:"lowThresholdPercent"`
	// MinAge is how long an image must have been unused before it may go.
	MinAge Duration `json:"minAge"`
	// Keep lists images never removed (the runtime's pinned and sandbox images never are).
	Keep []string `json:"keep,omitempty"`
}

// EdgedServer is the kubelet-style local API.
type EdgedServer struct {
	// Enable serves the API (kubectl logs, exec, attach, port-forward reach pods through it).
	Enable bool `json:"enable"`
	// Address is ip:port to listen on; port 0 picks a free one.
	Address string `json:"address"`
	// AllowRemote must be set to listen beyond loopback: the API runs commands in containers
	// without authentication.
	AllowRemote bool `json:"allowRemote"`
}

// MetaServer configures the local read API.
type MetaServer struct {
	// Enable serves the API.
	Enable bool `json:"enable"`
	// Address is host:port to listen on; port 0 picks a free one.
	Address string `json:"address"`
	// AllowRemote must be set to listen on a non-loopback address. The API serves the node's
	// Secrets without authentication, so only local clients may reach it by default.
	AllowRemote bool `json:"allowRemote"`
}

// Node is what the node reports about itself (see package nodestatus for each field).
type Node struct {
	// Labels are set on the node at registration, besides the ones it always carries
	// (node-role.kubernetes.io/edge, kubernetes.io/hostname, kubernetes.io/os,
	// kubernetes.io/arch; only kubernetes.io/hostname may be overridden).
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations are set on the node at registration.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Taints are the node's spec.taints at registration.
	Taints []corev1.Taint `json:"taints,omitempty"`
	// InternalIP overrides the detected InternalIP address (the default route's interface).
	InternalIP string `json:"internalIP,omitempty"`
	// MaxPods is the node's pod capacity.
	MaxPods int32 `json:"maxPods"`
	// SystemReserved and KubeReserved are subtracted from capacity to give allocatable, as
	// the kubelet's settings of the same names (cpu, memory, ephemeral-storage).
	SystemReserved corev1.ResourceList `json:"systemReserved,omitempty"`
	KubeReserved   corev1.ResourceList `json:"kubeReserved,omitempty"`
	// StatusUpdateFrequency is how often the status is computed and sent when it changed;
	// StatusReportFrequency the longest time between two reports when nothing changes.
	StatusUpdateFrequency Duration `json:"statusUpdateFrequency"`
	StatusReportFrequency Duration `json:"statusReportFrequency"`
	// LeaseRenewInterval and LeaseDurationSeconds are the heartbeat Lease's.
	LeaseRenewInterval   Duration `json:"leaseRenewInterval"`
	LeaseDurationSeconds int32    `json:"leaseDurationSeconds"`
	// Pressure sets when the MemoryPressure, DiskPressure and PIDPressure conditions turn True.
	Pressure nodestatus.PressureThresholds `json:"pressure"`
	// AutonomyTolerationSeconds is how long this node's pods stay bound while the node is
	// unreachable from the cloud: -1 means for ever; unset means the cluster's default. It is
	// reported as the node annotation edge.skerry.io/autonomy-toleration-seconds
	// ([AutonomyAnnotation]), which cloudcore's admission webhook turns into the pods'
	// tolerations (docs/autonomy.md).
	AutonomyTolerationSeconds *int64 `json:"autonomyTolerationSeconds,omitempty"`
}

// AutonomyAnnotation carries node.autonomyTolerationSeconds to cloudcore.
const AutonomyAnnotation = "edge.skerry.io/autonomy-toleration-seconds"

// NodeStatus returns the node status reporter's configuration.
func (c *EdgeCore) NodeStatus() nodestatus.Config {
	n := c.Node
	annotations := maps.Clone(n.Annotations)
	if n.AutonomyTolerationSeconds != nil {
		if annotations == nil {
			annotations = make(map[string]string)
		}
		v := strconv.FormatInt(*n.AutonomyTolerationSeconds, 10)
		if *n.AutonomyTolerationSeconds < 0 {
			v = "unlimited"
		}
		annotations[AutonomyAnnotation] = v
	}
	return nodestatus.Config{
		NodeName:              c.NodeName,
		DataDir:               c.DataDir,
		Labels:                n.Labels,
		Annotations:           annotations,
		Taints:                n.Taints,
		InternalIP:            n.InternalIP,
		MaxPods:               n.MaxPods,
		SystemReserved:        n.SystemReserved,
		KubeReserved:          n.KubeReserved,
		StatusUpdateFrequency: metav1.Duration{Duration: n.StatusUpdateFrequency.Duration},
		StatusReportFrequency: metav1.Duration{Duration: n.StatusReportFrequency.Duration},
		LeaseRenewInterval:    metav1.Duration{Duration: n.LeaseRenewInterval.Duration},
		LeaseDurationSeconds:  n.LeaseDurationSeconds,
		Pressure:              n.Pressure,
	}
}

// Hub configures EdgeHub: where cloudcore is and how the node joins it.
type Hub struct {
	// Server is host:port of cloudcore's hub (WebSocket :10000, QUIC :10001). Required.
	Server string `json:"server"`
	// Protocol is websocket (default) or quic.
	Protocol string `json:"protocol"`
	// BootstrapServer is host:port of cloudcore's bootstrap endpoint (joining and certificate
	// renewal). Empty means Server's host with port 10002.
	BootstrapServer string `json:"bootstrapServer,omitempty"`
	// Token is the join token printed by `keadm gettoken` (<64 hex CA hash>.<secret>). It is
	// used only when the node has no certificate under <dataDir>/certs yet; after the first
	// successful start the node authenticates with its certificate and the token can (and
	// should) be removed from this file.
	Token string `json:"token,omitempty"`
	// ProjectID is sent to the cloud in the connection headers.
	ProjectID string `json:"projectID"`
	// KeepaliveInterval is how often the edge sends a keepalive; the cloud drops a session
	// silent for 30 s.
	KeepaliveInterval Duration `json:"keepaliveInterval"`
	// Backoff bounds the jittered exponential reconnect delay.
	Backoff Backoff `json:"backoff"`
}

// Backoff is the reconnect policy: delays grow from Base and never exceed Max.
type Backoff struct {
	Base Duration `json:"base"`
	Max  Duration `json:"max"`
}

// Duration is a time.Duration written as a Go duration string ("15s", "1m30s").
type Duration struct{ time.Duration }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"15s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Runtime is the CRI container runtime.
type Runtime struct {
	// Endpoint is the CRI gRPC endpoint, a unix:// URL.
	Endpoint string `json:"endpoint"`
}

// Default returns the configuration used where the file says nothing. hub.server has no
// useful default: it must name the cloud.
func Default() *EdgeCore {
	host, _ := os.Hostname()
	return &EdgeCore{
		TypeMeta: Meta,
		NodeName: strings.ToLower(host),
		DataDir:  "/var/lib/skerry/edgecore",
		Hub: Hub{
			Protocol:          ProtocolWebSocket,
			ProjectID:         DefaultProjectID,
			KeepaliveInterval: Duration{15 * time.Second},
			Backoff:           Backoff{Base: Duration{time.Second}, Max: Duration{60 * time.Second}},
		},
		Runtime:    Runtime{Endpoint: "unix:///run/containerd/containerd.sock"},
		MetaServer: MetaServer{Enable: true, Address: "127.0.0.1:10550"},
		Edged: Edged{
			Enable:       true,
			CgroupRoot:   "/kubepods",
			RelistPeriod: Duration{5 * time.Second},
			Server:       EdgedServer{Enable: true, Address: "127.0.0.1:10350"},
			ImageGC:      ImageGC{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: Duration{2 * time.Minute}},
		},
		EventBus: EventBus{Enable: true, Config: eventbus.Default()},
		DeviceTwin: DeviceTwin{
			Enable:             true,
			DefaultReportCycle: Duration{time.Second},
			DMI:                DMI{Socket: dmiDefaults.Socket, RequestsPerSecond: dmiDefaults.RequestsPerSecond, Burst: dmiDefaults.Burst},
		},
		Node: Node{
			MaxPods:               nodestatus.DefaultMaxPods,
			StatusUpdateFrequency: Duration{nodestatus.DefaultStatusUpdateFrequency},
			StatusReportFrequency: Duration{nodestatus.DefaultStatusReportFrequency},
			LeaseRenewInterval:    Duration{nodestatus.DefaultLeaseRenewInterval},
			LeaseDurationSeconds:  nodestatus.DefaultLeaseDurationSeconds,
			Pressure: nodestatus.PressureThresholds{
				MemoryAvailable: nodestatus.DefaultMemoryAvailable(),
				DiskFreePercent: nodestatus.DefaultDiskFreePercent,
				PIDPercent:      nodestatus.DefaultPIDPercent,
			},
		},
	}
}

// Placeholders in [Minimal]'s output, to be replaced before the file is used.
const (
	PlaceholderCloudCoreIP = "<cloudcore-ip>"
	PlaceholderToken       = "<token from keadm gettoken>"
	// PlaceholderNodeName stands in for the host name when it is not a valid node name.
	PlaceholderNodeName = "<node-name>"
)

// Minimal returns a minimal configuration file (edgecore --minconfig): apiVersion and kind
// and the keys an operator normally sets, with placeholders to fill in. Every key it leaves
// out keeps its default, so the file stays valid as defaults change.
func Minimal() []byte {
	d := Default()
	name := d.NodeName
	if name == "" || len(validation.IsDNS1123Subdomain(name)) > 0 {
		name = PlaceholderNodeName
	}
	return fmt.Appendf(nil, `apiVersion: %s
kind: %s
# This node's name in Kubernetes.
nodeName: %q
dataDir: %q
hub:
  # cloudcore's hub: port 10000 for websocket, 10001 for quic.
  server: %q
  protocol: %s
  # Needed only until the node has its certificate; remove it after the first start.
  token: %q
runtime:
  endpoint: %q
`, d.APIVersion, d.Kind, name, d.DataDir, PlaceholderCloudCoreIP+":10000", d.Hub.Protocol, PlaceholderToken, d.Runtime.Endpoint)
}

// BootstrapAddr returns hub.bootstrapServer, or hub.server's host on DefaultBootstrapPort.
func (h *Hub) BootstrapAddr() string {
	if h.BootstrapServer != "" {
		return h.BootstrapServer
	}
	host, _, err := net.SplitHostPort(h.Server)
	if err != nil {
		return ""
	}
	return net.JoinHostPort(host, DefaultBootstrapPort)
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
	} else if err := notADirectory(c.DataDir); err != nil {
		errs = append(errs, fmt.Errorf("dataDir: %w", err))
	}
	errs = append(errs, c.Hub.validate()...)
	if err := validateCRIEndpoint(c.Runtime.Endpoint); err != nil {
		errs = append(errs, fmt.Errorf("runtime.endpoint: %w", err))
	}
	if c.MetaServer.Enable {
		if err := validateListenAddress(c.MetaServer.Address, c.MetaServer.AllowRemote); err != nil {
			errs = append(errs, fmt.Errorf("metaServer.address: %w", err))
		}
	}
	if c.Edged.Enable {
		if !filepath.IsAbs(c.Edged.CgroupRoot) || filepath.Clean(c.Edged.CgroupRoot) == "/" {
			errs = append(errs, fmt.Errorf("edged.cgroupRoot %q: want an absolute cgroup path below the root, e.g. /kubepods", c.Edged.CgroupRoot))
		}
		if c.Edged.StaticPodPath != "" && !filepath.IsAbs(c.Edged.StaticPodPath) {
			errs = append(errs, fmt.Errorf("edged.staticPodPath %q: want an absolute path, e.g. /etc/kubeedge/manifests", c.Edged.StaticPodPath))
		} else if err := notADirectory(c.Edged.StaticPodPath); c.Edged.StaticPodPath != "" && err != nil {
			errs = append(errs, fmt.Errorf("edged.staticPodPath: %w", err))
		}
		if c.Edged.RelistPeriod.Duration < 100*time.Millisecond {
			errs = append(errs, fmt.Errorf("edged.relistPeriod %s: want at least 100ms", c.Edged.RelistPeriod))
		}
		if g := c.Edged.ImageGC; g.LowThresholdPercent < 0 || g.HighThresholdPercent > 100 || g.LowThresholdPercent > g.HighThresholdPercent {
			errs = append(errs, fmt.Errorf("edged.imageGC: lowThresholdPercent %d and highThresholdPercent %d: want 0 <= low <= high <= 100",
				g.LowThresholdPercent, g.HighThresholdPercent))
		}
		if c.Edged.Server.Enable {
			if err := validateListenAddress(c.Edged.Server.Address, c.Edged.Server.AllowRemote); err != nil {
				errs = append(errs, fmt.Errorf("edged.server.address: %w", err))
			}
		}
	}
	if c.EventBus.Enable {
		if err := c.EventBus.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("eventBus: %w", err))
		}
	}
	if c.DeviceTwin.Enable {
		if !c.EventBus.Enable {
			errs = append(errs, errors.New("deviceTwin.enable: the device twin answers on MQTT; enable eventBus too, or disable deviceTwin"))
		}
		if c.DeviceTwin.DefaultReportCycle.Duration < 100*time.Millisecond {
			errs = append(errs, fmt.Errorf("deviceTwin.defaultReportCycle %s: want at least 100ms", c.DeviceTwin.DefaultReportCycle))
		}
		if err := c.DMIConfig().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("deviceTwin.%w", err))
		}
		if g := c.DeviceTwin.DMI.Group; g != "" {
			if _, err := strconv.Atoi(g); err != nil {
				if _, err := user.LookupGroup(g); err != nil {
					errs = append(errs, fmt.Errorf("deviceTwin.dmi.group %q: %v; create the group, give a numeric gid, or leave it empty", g, err))
				}
			}
		}
	}
	if c.Node.AutonomyTolerationSeconds != nil && *c.Node.AutonomyTolerationSeconds < -1 {
		errs = append(errs, fmt.Errorf("node.autonomyTolerationSeconds %d: want -1 (for ever) or a number of seconds",
			*c.Node.AutonomyTolerationSeconds))
	}
	errs = append(errs, c.listenerConflicts()...)
	if c.NodeName != "" {
		ns := c.NodeStatus()
		if err := ns.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("node: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (h *Hub) validate() []error {
	var errs []error
	if h.Server == "" {
		errs = append(errs, errors.New("hub.server: empty; set it to cloudcore's hub address, e.g. 10.0.0.1:10000"))
	} else if strings.Contains(h.Server, "://") {
		errs = append(errs, fmt.Errorf("hub.server %q: want host:port without a scheme, e.g. 10.0.0.1:10000; hub.protocol chooses websocket or quic", h.Server))
	} else if err := validateHostPort(h.Server); err != nil {
		errs = append(errs, fmt.Errorf("hub.server: %w", err))
	}
	if h.Protocol != ProtocolWebSocket && h.Protocol != ProtocolQUIC {
		errs = append(errs, fmt.Errorf("hub.protocol %q: want %s or %s", h.Protocol, ProtocolWebSocket, ProtocolQUIC))
	}
	if h.BootstrapServer != "" {
		if err := validateHostPort(h.BootstrapServer); err != nil {
			errs = append(errs, fmt.Errorf("hub.bootstrapServer: %w", err))
		}
	}
	// The token is a secret: the error describes its shape, never its value.
	if h.Token != "" && !wellFormedToken(h.Token) {
		errs = append(errs, errors.New("hub.token: malformed; want <64 hex characters>.<secret> as printed by `keadm gettoken`"))
	}
	if h.ProjectID == "" || len(h.ProjectID) > 64 {
		errs = append(errs, fmt.Errorf("hub.projectID: want 1 to 64 characters, got %d", len(h.ProjectID)))
	}
	if h.KeepaliveInterval.Duration <= 0 {
		errs = append(errs, fmt.Errorf("hub.keepaliveInterval %s: want a positive duration", h.KeepaliveInterval))
	}
	if h.Backoff.Base.Duration <= 0 {
		errs = append(errs, fmt.Errorf("hub.backoff.base %s: want a positive duration", h.Backoff.Base))
	}
	if h.Backoff.Max.Duration < h.Backoff.Base.Duration {
		errs = append(errs, fmt.Errorf("hub.backoff.max %s: want at least hub.backoff.base (%s)", h.Backoff.Max, h.Backoff.Base))
	}
	return errs
}

// listenerConflicts reports two enabled TCP listeners of edgecore that would bind the same
// port on overlapping hosts: the second would fail at start.
func (c *EdgeCore) listenerConflicts() []error {
	type listener struct{ key, addr string }
	var ls []listener
	if c.MetaServer.Enable {
		ls = append(ls, listener{"metaServer.address", c.MetaServer.Address})
	}
	if c.Edged.Enable && c.Edged.Server.Enable {
		ls = append(ls, listener{"edged.server.address", c.Edged.Server.Address})
	}
	if m := c.EventBus.Mode; c.EventBus.Enable && (m == eventbus.ModeInternal || m == eventbus.ModeBoth) {
		ls = append(ls, listener{"eventBus.internal.address", c.EventBus.Internal.Address})
	}
	var errs []error
	for i, a := range ls {
		for _, b := range ls[:i] {
			if sameTCPEndpoint(a.addr, b.addr) {
				errs = append(errs, fmt.Errorf("%s %q: also %s (%q); give each listener its own port", a.key, a.addr, b.key, b.addr))
				break
			}
		}
	}
	return errs
}

// sameTCPEndpoint reports whether binding both addresses would collide. Unparsable addresses
// and port 0 never do (they are reported elsewhere, or pick a free port).
func sameTCPEndpoint(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	norm := func(h string) net.IP {
		if h == "localhost" {
			return net.IPv4(127, 0, 0, 1)
		}
		return net.ParseIP(h)
	}
	ipa, ipb := norm(ha), norm(hb)
	wildcard := func(h string, ip net.IP) bool { return h == "" || (ip != nil && ip.IsUnspecified()) }
	switch {
	case wildcard(ha, ipa) || wildcard(hb, ipb):
		return true
	case ipa != nil && ipb != nil:
		return ipa.Equal(ipb)
	}
	return ha == hb
}

// notADirectory reports a path that exists but is not a directory. A missing one is fine:
// edgecore creates it, or (static pods) watches for it.
func notADirectory(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s exists and is not a directory", path)
	}
	return nil
}

func validateHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port: %w", s, err)
	}
	if host == "" {
		return fmt.Errorf("%q: empty host", s)
	}
	if net.ParseIP(host) == nil && len(validation.IsDNS1123Subdomain(strings.ToLower(host))) > 0 {
		return fmt.Errorf("%q: host is neither an IP address nor a DNS name", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port must be 1-65535", s)
	}
	return nil
}

// wellFormedToken checks the shape `keadm gettoken` prints: <hex SHA-256 of the CA>.<secret>.
func wellFormedToken(t string) bool {
	hash, secret, ok := strings.Cut(t, ".")
	b, err := hex.DecodeString(hash)
	return ok && err == nil && len(b) == 32 && secret != "" && !strings.ContainsAny(secret, " \t\r\n")
}

// validateListenAddress accepts host:port with an IP host (port 0 allowed); a non-loopback
// host needs allowRemote.
func validateListenAddress(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want ip:port: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return fmt.Errorf("%q: the host must be an IP address", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be 0-65535", addr)
	}
	if !ip.IsLoopback() && !allowRemote {
		return fmt.Errorf("%q is not a loopback address; the API is unauthenticated, set allowRemote to serve it beyond this host", addr)
	}
	return nil
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

// dmiDefaults are the DMI server's own defaults; the file sets the user-facing subset.
var dmiDefaults = dmi.DefaultConfig()

// DMIConfig is the DMI server's configuration: the file's settings over its defaults.
func (c *EdgeCore) DMIConfig() dmi.Config {
	d := dmi.DefaultConfig()
	d.Socket, d.Group = c.DeviceTwin.DMI.Socket, c.DeviceTwin.DMI.Group
	d.RequestsPerSecond, d.Burst = c.DeviceTwin.DMI.RequestsPerSecond, c.DeviceTwin.DMI.Burst
	return d
}
