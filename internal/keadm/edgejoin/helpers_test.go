package edgejoin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skerry-io/skerry/edge/certs"
	"github.com/skerry-io/skerry/internal/keadm/service"
	"github.com/skerry-io/skerry/pkg/pki"
)

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.secret"

// v1MountInfo is a cgroup v1 host's mountinfo.
const v1MountInfo = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
`

// fakeService stands in for package service: Start "runs" edgecore, whose log then says
// it connected.
type fakeService struct {
	mu      sync.Mutex
	starts  []service.Spec
	removes []service.Spec
	running bool
	log     string
	// connect, when set, is what a start appends to the log.
	connect string
}

func (f *fakeService) Start(_ context.Context, s service.Spec) (service.Handle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, s)
	f.running = true
	f.log += "time=x level=INFO msg=starting binary=edgecore version=v0\n" + f.connect
	return service.Handle{Kind: service.KindProcess, PID: 4242, LogPath: filepath.Join(s.StateDir, s.Name+".log")}, nil
}

func (f *fakeService) Running(service.Spec) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running, nil
}

func (f *fakeService) Stop(context.Context, service.Spec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running = false
	return nil
}

func (f *fakeService) Remove(_ context.Context, s service.Spec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running = false
	f.removes = append(f.removes, s)
	return nil
}

func (f *fakeService) LogTail(service.Spec, int) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.log, nil
}

// fakeRuntime answers Version and records pod removals.
type fakeRuntime struct {
	mu         sync.Mutex
	versionErr error
	uids       []string
	removed    []string // node names
}

func (f *fakeRuntime) Version(context.Context) (string, string, error) {
	return "containerd", "v1.6.20", f.versionErr
}

func (f *fakeRuntime) RemoveNodePods(_ context.Context, node string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, node)
	uids := f.uids
	f.uids = nil
	return uids, nil
}

func (f *fakeRuntime) Close() error { return nil }

// fakeBootstrap stores a valid certificate of nodeName, as certs.Bootstrap would.
type fakeBootstrap struct {
	calls int
	err   error
}

func (b *fakeBootstrap) bootstrap(_ context.Context, addr, token, nodeName, dataDir string) error {
	b.calls++
	if b.err != nil {
		return b.err
	}
	if token != testToken || addr == "" {
		return fmt.Errorf("unexpected token %q or address %q", token, addr)
	}
	return storeCert(dataDir, nodeName)
}

func storeCert(dataDir, nodeName string) error {
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "ca"})
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	dir := certs.Dir(dataDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := pki.WriteCertFile(filepath.Join(dir, certs.CAFile), ca.Cert); err != nil {
		return err
	}
	return pki.WriteKeyPair(filepath.Join(dir, certs.CertFile), filepath.Join(dir, certs.KeyFile), &pki.KeyPair{Cert: cert, Key: key})
}

// env is a join/reset sandbox in a temp dir.
type env struct {
	root string
	svc  *fakeService
	rt   *fakeRuntime
	boot *fakeBootstrap
	out  strings.Builder
	errw strings.Builder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{root: t.TempDir(), svc: &fakeService{connect: "time=y level=INFO msg=\"edgehub: connected to the cloud\" protocol=websocket\n"},
		rt: &fakeRuntime{}, boot: &fakeBootstrap{}}
	if err := os.WriteFile(e.path("mountinfo"), []byte(v1MountInfo), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) path(p string) string { return filepath.Join(e.root, p) }

func (e *env) options() Options {
	return Options{
		CloudCoreIPPort: "10.0.0.1:10000",
		Token:           testToken,
		NodeName:        "edge-1",
		Sets: []string{
			"dataDir=" + e.path("data"),
			"deviceTwin.dmi.socket=" + e.path("dmi.sock"),
			"metaServer.address=127.0.0.1:0",
			"edged.server.address=127.0.0.1:0",
			"eventBus.internal.address=127.0.0.1:0",
		},
		EdgecoreBinary: "/bin/true",
		ConfigDir:      e.path("etc/kubeedge/config"),
		StateDir:       e.path("state"),
		Timeout:        10 * time.Second,
		Stdout:         &e.out,
		Stderr:         &e.errw,
		Bootstrap:      e.boot.bootstrap,
		Service:        e.svc,
		Runtime:        func(string) (Runtime, error) { return e.rt, nil },
		MountInfo:      e.path("mountinfo"),
		CgroupFS:       e.path("cgroup"),
		Dial: func(context.Context, string, string) (net.Conn, error) {
			a, b := net.Pipe()
			b.Close()
			return a, nil
		},
	}
}
