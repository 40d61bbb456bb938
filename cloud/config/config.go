// Package config is cloudcore's versioned configuration file (kind CloudCore).
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skerry-io/skerry/pkg/configfile"
)

// Meta is the apiVersion and kind of a cloudcore configuration file.
var Meta = configfile.TypeMeta{APIVersion: "cloudcore.config.skerry.io/v1alpha1", Kind: "CloudCore"}

// CloudCore is the configuration of cloudcore, the file given with --config.
type CloudCore struct {
	configfile.TypeMeta `json:",inline"`
	// KubeAPI says how cloudcore reaches the Kubernetes API server.
	KubeAPI KubeAPI `json:"kubeAPI"`
	// Namespace holds cloudcore's Secrets: the CA (skerry-ca), the serving certificate
	// (skerry-cloudcore-serving) and the join tokens. It is created if missing.
	Namespace string `json:"namespace"`
	// Hub is CloudHub, the edge nodes' WebSocket and QUIC endpoints.
	Hub Hub `json:"hub"`
	// Bootstrap is the HTTPS service edge nodes join through.
	Bootstrap Bootstrap `json:"bootstrap"`
	// Admin is the local health endpoint.
	Admin Admin `json:"admin"`
	// Admission is the webhook that gives edge pods the tolerations that keep them bound while
	// their node is unreachable (docs/autonomy.md).
	Admission Admission `json:"admission"`
}

// Admission configures the autonomy webhook.
type Admission struct {
	// Enable runs the webhook and registers it with the API server.
	Enable bool `json:"enable"`
	// Address is the HTTPS listen address; the serving certificate is cloudcore's.
	Address string `json:"address"`
	// URL is what the API server calls. Empty means https://<first advertise address, or
	// 127.0.0.1>:<port of Address>/mutate-pods-autonomy; its host must be in the serving
	// certificate.
	URL string `json:"url,omitempty"`
	// EdgePodsDefault gives pods aimed at edge nodes (by nodeSelector or affinity) the default
	// below when their node has no setting of its own.
	EdgePodsDefault bool `json:"edgePodsDefault"`
	// DefaultTolerationSeconds is that default; unset means for ever.
	DefaultTolerationSeconds *int64 `json:"defaultTolerationSeconds,omitempty"`
}

// KubeAPI is the connection to the Kubernetes API server.
type KubeAPI struct {
	// Kubeconfig is the path of a kubeconfig file; empty means the in-cluster service account.
	Kubeconfig string `json:"kubeconfig"`
	// QPS and Burst bound cloudcore's request rate to the API server.
	QPS   float32 `json:"qps"`
	Burst int     `json:"burst"`
}

// Hub configures CloudHub.
type Hub struct {
	// WebSocket is the TCP endpoint edge nodes connect to with hub.protocol websocket.
	WebSocket Listener `json:"websocket"`
	// QUIC is the UDP endpoint edge nodes connect to with hub.protocol quic; being UDP, it may
	// share its port number with the TCP listeners.
	QUIC Listener `json:"quic"`
	// NodeLimit bounds the edge nodes connected at once; further connections are refused.
	NodeLimit int `json:"nodeLimit"`
	// KeepaliveTimeout closes a session the edge left silent this long.
	KeepaliveTimeout metav1.Duration `json:"keepaliveTimeout"`
	// RateLimit paces the messages sent down to each node.
	RateLimit RateLimit `json:"rateLimit"`
}

// Listener is one transport endpoint.
type Listener struct {
	// Enable turns the listener on.
	Enable bool `json:"enable"`
	// Address is host:port to listen on; port 0 picks a free one.
	Address string `json:"address"`
}

// RateLimit is a per-node token bucket: QPS messages per second, bursts of Burst.
type RateLimit struct {
	QPS   float64 `json:"qps"`
	Burst int     `json:"burst"`
}

// Bootstrap configures the node bootstrap service and the serving certificate.
type Bootstrap struct {
	// Address is the HTTPS listen address of /ca.crt and /edge.crt.
	Address string `json:"address"`
	// AdvertiseAddresses are the IP addresses edge nodes reach cloudcore at; they become IP
	// SANs of the serving certificate (with 127.0.0.1). Empty means every non-loopback address
	// of this host's interfaces, looked up at start: set it explicitly behind NAT or a load
	// balancer, or when the host's addresses change.
	AdvertiseAddresses []string `json:"advertiseAddresses"`
	// DNSNames are extra DNS SANs of the serving certificate (localhost is always included).
	DNSNames []string `json:"dnsNames"`

	// There is no tokenTTL here on purpose: tokens are created by `keadm gettoken` (its --ttl,
	// default 24h), never by cloudcore, so such a key would be read by nobody.

	// CertValidity is the lifetime of the client certificates issued to edge nodes.
	CertValidity metav1.Duration `json:"certValidity"`
}

// Admin is the local HTTP endpoint with /healthz, /readyz and /debug/nodes.
type Admin struct {
	// Address is host:port to listen on; keep it on loopback, the endpoint has no authentication.
	Address string `json:"address"`
}

// Default returns the configuration used where the file says nothing.
func Default() *CloudCore {
	return &CloudCore{
		TypeMeta: Meta,
		// cloudcore writes for every node it serves (a Lease every 10 s, status, tokens):
		// 1,000 nodes (the default hub.nodeLimit) need well over 200 requests/s
		// (docs/performance.md, "Pod sync").
		KubeAPI:   KubeAPI{QPS: 500, Burst: 1000},
		Namespace: "kubeedge",
		Hub: Hub{
			WebSocket:        Listener{Enable: true, Address: "0.0.0.0:10000"},
			QUIC:             Listener{Enable: false, Address: "0.0.0.0:10001"},
			NodeLimit:        1000,
			KeepaliveTimeout: metav1.Duration{Duration: 30 * time.Second},
			RateLimit:        RateLimit{QPS: 200, Burst: 500},
		},
		Bootstrap: Bootstrap{
			Address:      "0.0.0.0:10002",
			CertValidity: metav1.Duration{Duration: 8760 * time.Hour},
		},
		Admin:     Admin{Address: "127.0.0.1:10006"},
		Admission: Admission{Enable: true, Address: "0.0.0.0:10005", EdgePodsDefault: true},
	}
}

// Placeholders in [Minimal]'s output, to be replaced before the file is used.
const (
	PlaceholderKubeconfig       = "<kubeconfig-path>"
	PlaceholderAdvertiseAddress = "<advertise-ip>"
)

// Minimal returns a minimal configuration file (cloudcore --minconfig): apiVersion and kind
// and the keys an operator normally sets, with placeholders to fill in. Every key it leaves
// out keeps its default, so the file stays valid as defaults change.
func Minimal() []byte {
	d := Default()
	return fmt.Appendf(nil, `apiVersion: %s
kind: %s
kubeAPI:
  # The kubeconfig cloudcore uses; delete the line to use the in-cluster service account.
  kubeconfig: %q
hub:
  websocket:
    enable: %t
  quic:
    enable: %t
bootstrap:
  # The IP addresses edge nodes reach cloudcore at; they go into the serving certificate.
  advertiseAddresses: [%q]
`, d.APIVersion, d.Kind, PlaceholderKubeconfig, d.Hub.WebSocket.Enable, d.Hub.QUIC.Enable, PlaceholderAdvertiseAddress)
}

// Validate reports every invalid setting, each naming its key.
func (c *CloudCore) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if p := c.KubeAPI.Kubeconfig; p != "" {
		if st, err := os.Stat(p); err != nil {
			errs = append(errs, fmt.Errorf("kubeAPI.kubeconfig: %w", err))
		} else if st.IsDir() {
			bad("kubeAPI.kubeconfig", "%s is a directory, want a kubeconfig file", p)
		}
	}
	if c.KubeAPI.QPS <= 0 {
		bad("kubeAPI.qps", "%v, want > 0", c.KubeAPI.QPS)
	}
	if c.KubeAPI.Burst < 1 || float32(c.KubeAPI.Burst) < c.KubeAPI.QPS {
		bad("kubeAPI.burst", "%d, want >= 1 and >= kubeAPI.qps", c.KubeAPI.Burst)
	}
	if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		bad("namespace", "%q: %v", c.Namespace, msgs)
	}

	if !c.Hub.WebSocket.Enable && !c.Hub.QUIC.Enable {
		bad("hub.websocket.enable", "and hub.quic.enable are both false, want at least one transport")
	}
	if c.Hub.WebSocket.Enable {
		checkAddr(bad, "hub.websocket.address", c.Hub.WebSocket.Address)
	}
	if c.Hub.QUIC.Enable {
		checkAddr(bad, "hub.quic.address", c.Hub.QUIC.Address)
	}
	if c.Hub.NodeLimit < 1 {
		bad("hub.nodeLimit", "%d, want >= 1", c.Hub.NodeLimit)
	}
	if c.Hub.KeepaliveTimeout.Duration < time.Second {
		bad("hub.keepaliveTimeout", "%v, want >= 1s", c.Hub.KeepaliveTimeout.Duration)
	}
	if c.Hub.RateLimit.QPS <= 0 {
		bad("hub.rateLimit.qps", "%v, want > 0", c.Hub.RateLimit.QPS)
	}
	if c.Hub.RateLimit.Burst < 1 {
		bad("hub.rateLimit.burst", "%d, want >= 1", c.Hub.RateLimit.Burst)
	}

	checkAddr(bad, "bootstrap.address", c.Bootstrap.Address)
	for i, a := range c.Bootstrap.AdvertiseAddresses {
		if ip := net.ParseIP(a); ip == nil || ip.IsUnspecified() {
			bad(fmt.Sprintf("bootstrap.advertiseAddresses[%d]", i), "%q, want a specific IP address", a)
		}
	}
	for i, n := range c.Bootstrap.DNSNames {
		if msgs := validation.IsDNS1123Subdomain(n); len(msgs) > 0 {
			bad(fmt.Sprintf("bootstrap.dnsNames[%d]", i), "%q: %v", n, msgs)
		}
	}
	if c.Bootstrap.CertValidity.Duration < time.Hour {
		bad("bootstrap.certValidity", "%v, want >= 1h", c.Bootstrap.CertValidity.Duration)
	}
	checkAddr(bad, "admin.address", c.Admin.Address)
	if c.Admission.Enable {
		checkAddr(bad, "admission.address", c.Admission.Address)
		if u := c.Admission.URL; u != "" {
			if pu, err := url.Parse(u); err != nil || pu.Scheme != "https" || pu.Host == "" {
				bad("admission.url", "%q, want an https:// URL", u)
			}
		}
		if d := c.Admission.DefaultTolerationSeconds; d != nil && *d < 0 {
			bad("admission.defaultTolerationSeconds", "%d, want >= 0 (leave it unset for ever)", *d)
		}
		c.checkAdmissionURLInCert(bad)
	}
	c.checkListenerConflicts(bad)
	return errors.Join(errs...)
}

// checkListenerConflicts reports two enabled TCP listeners on the same port of overlapping
// hosts: the second bind would fail at start. hub.quic is UDP and so conflicts with none.
func (c *CloudCore) checkListenerConflicts(bad func(key, format string, args ...any)) {
	type listener struct{ key, addr string }
	var ls []listener
	if c.Hub.WebSocket.Enable {
		ls = append(ls, listener{"hub.websocket.address", c.Hub.WebSocket.Address})
	}
	ls = append(ls, listener{"bootstrap.address", c.Bootstrap.Address})
	if c.Admission.Enable {
		ls = append(ls, listener{"admission.address", c.Admission.Address})
	}
	ls = append(ls, listener{"admin.address", c.Admin.Address})
	for i, a := range ls {
		for _, b := range ls[:i] {
			if sameTCPEndpoint(a.addr, b.addr) {
				bad(a.key, "%q is also %s (%q); give each listener its own port", a.addr, b.key, b.addr)
				break
			}
		}
	}
}

// sameTCPEndpoint reports whether binding both addresses would collide. Unparsable addresses
// and port 0 never do (they are reported elsewhere, or pick a free port).
func sameTCPEndpoint(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	wildcard := func(h string) bool {
		ip := net.ParseIP(h)
		return h == "" || (ip != nil && ip.IsUnspecified())
	}
	if wildcard(ha) || wildcard(hb) {
		return true
	}
	ipa, ipb := net.ParseIP(ha), net.ParseIP(hb)
	if ipa != nil && ipb != nil {
		return ipa.Equal(ipb)
	}
	return ha == hb
}

// checkAdmissionURLInCert reports an admission.url whose host the serving certificate cannot
// cover: the API server would refuse the webhook's TLS. IP hosts are checked only when the
// advertise addresses are explicit (otherwise they are the host's, known only at start).
func (c *CloudCore) checkAdmissionURLInCert(bad func(key, format string, args ...any)) {
	pu, err := url.Parse(c.Admission.URL)
	if c.Admission.URL == "" || err != nil || pu.Scheme != "https" || pu.Hostname() == "" {
		return
	}
	host := pu.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if ip.Equal(net.IPv4(127, 0, 0, 1)) || len(c.Bootstrap.AdvertiseAddresses) == 0 {
			return
		}
		for _, a := range c.Bootstrap.AdvertiseAddresses {
			if ip.Equal(net.ParseIP(a)) {
				return
			}
		}
		bad("admission.url", "host %s is not in the serving certificate; add it to bootstrap.advertiseAddresses or use one of %v",
			host, c.Bootstrap.AdvertiseAddresses)
		return
	}
	if host == "localhost" || slices.Contains(c.Bootstrap.DNSNames, host) {
		return
	}
	bad("admission.url", "host %q is not in the serving certificate; add it to bootstrap.dnsNames", host)
}

// checkAddr accepts host:port with a numeric port (0 picks a free port, for tests).
func checkAddr(bad func(key, format string, args ...any), key, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		bad(key, "%q: %v", addr, err)
		return
	}
	if host != "" && net.ParseIP(host) == nil {
		if msgs := validation.IsDNS1123Subdomain(host); len(msgs) > 0 {
			bad(key, "host %q is neither an IP address nor a DNS name", host)
		}
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p < 0 || p > 65535 || fmt.Sprint(p) != port {
		bad(key, "port %q, want 0-65535", port)
	}
}
