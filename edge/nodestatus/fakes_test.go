package nodestatus

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// waitTimeout bounds every wait for the reporter's goroutines; it is a deadline for a
// failing test, never a sleep.
const waitTimeout = 10 * time.Second

// fakeClock is a manual clock: time moves only with Step, which fires due tickers.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
	created chan struct{} // one value per NewTicker
}

type fakeTicker struct {
	clock   *fakeClock
	c       chan time.Time
	d       time.Duration
	next    time.Time
	stopped bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), created: make(chan struct{}, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTicker(d time.Duration) Ticker {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTicker{clock: c, c: make(chan time.Time, 1), d: d, next: c.now.Add(d)}
	c.tickers = append(c.tickers, t)
	c.created <- struct{}{}
	return t
}

// Step advances the clock and fires, like time.Ticker, at most one pending tick per ticker.
func (c *fakeClock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.tickers {
		for !t.stopped && !t.next.After(c.now) {
			select {
			case t.c <- c.now:
			default:
			}
			t.next = t.next.Add(t.d)
		}
	}
}

// waitTickers waits until n tickers have been created since the clock was made.
func (c *fakeClock) waitTickers(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-c.created:
		case <-time.After(waitTimeout):
			t.Fatalf("timed out waiting for %d tickers", n)
		}
	}
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }

func (t *fakeTicker) Stop() {
	t.clock.mu.Lock()
	t.stopped = true
	t.clock.mu.Unlock()
}

type enqueued struct {
	msg   *wire.Message
	class store.Class
}

// fakeOutbox records enqueued messages and passes them on a channel.
type fakeOutbox struct {
	mu   sync.Mutex
	all  []enqueued
	err  error
	ch   chan enqueued
	next int64
}

func newFakeOutbox() *fakeOutbox { return &fakeOutbox{ch: make(chan enqueued, 1000)} }

func (o *fakeOutbox) Enqueue(_ context.Context, msg *wire.Message, class store.Class) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, o.err
	}
	if _, err := wire.ParseResource(msg.Route.Resource); err != nil {
		return 0, err
	}
	o.next++
	e := enqueued{msg, class}
	o.all = append(o.all, e)
	o.ch <- e
	return o.next, nil
}

func (o *fakeOutbox) setErr(err error) {
	o.mu.Lock()
	o.err = err
	o.mu.Unlock()
}

// take returns every message enqueued so far and forgets them.
func (o *fakeOutbox) take() []enqueued {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := o.all
	o.all = nil
	for len(o.ch) > 0 {
		<-o.ch
	}
	return out
}

// wait returns the next enqueued message.
func (o *fakeOutbox) wait(t *testing.T) enqueued {
	t.Helper()
	select {
	case e := <-o.ch:
		o.mu.Lock()
		o.all = o.all[1:]
		o.mu.Unlock()
		return e
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for an enqueue")
		return enqueued{}
	}
}

// fakeRuntime answers Version with what it was told; it fails on a done context.
type fakeRuntime struct {
	mu   sync.Mutex
	err  error
	name string
	ver  string
}

func (f *fakeRuntime) Version(ctx context.Context) (string, string, error) {
	if err := ctx.Err(); err != nil {
		return "", "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.name, f.ver, f.err
}

func (f *fakeRuntime) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

const (
	testRoute = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
		"eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n" +
		"wlan0\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
	testMeminfo = "MemTotal:        8000000 kB\nMemFree:         1000000 kB\nMemAvailable:    4000000 kB\n" +
		"Buffers:          100000 kB\nCached:          2000000 kB\nHugePages_Total:       0\n"
)

// testFiles is a plausible host: 4 CPUs, 8000000 KiB of memory, eth0 as default route.
func testFiles() map[string]string {
	return map[string]string{
		"/proc/meminfo":                   testMeminfo,
		"/proc/sys/kernel/pid_max":        "4194304\n",
		"/proc/loadavg":                   "0.10 0.20 0.30 2/345 6789\n",
		"/proc/sys/kernel/osrelease":      "6.8.0-47-generic\n",
		"/proc/sys/kernel/random/boot_id": "8a3f5c1e-0b2d-4e6f-9a8b-7c6d5e4f3a2b\n",
		"/proc/net/route":                 testRoute,
		"/etc/machine-id":                 "0123456789abcdef0123456789abcdef\n",
		"/etc/os-release":                 "NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nID=ubuntu\n",
		"/sys/class/dmi/id/product_uuid":  "4c4c4544-0042-3510-8052-b4c04f4e3232\n",
		"/sys/devices/system/cpu/online":  "0-3\n",
	}
}

// writeRoot writes files under a new temporary root.
func writeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		writeFile(t, root, p, content)
	}
	return root
}

func writeFile(t *testing.T, root, p, content string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustCIDR(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

// fakeNet makes h's network and syscall functions deterministic.
func fakeNet(h *host, fs *fsStats) {
	h.hostname = func() (string, error) { return "Edge-1", nil }
	h.statfs = func(string) (fsStats, error) { return *fs, nil }
	h.uname = func() (string, error) { return "uname-release", nil }
	h.numCPU = func() int { return 1 }
	h.ifaceAddrs = func(name string) ([]net.Addr, error) {
		switch name {
		case "eth0":
			return []net.Addr{mustCIDR("fe80::1/64"), mustCIDR("2001:db8::10/64"), mustCIDR("192.168.1.10/24")}, nil
		case "wlan0":
			return []net.Addr{mustCIDR("192.168.2.20/24")}, nil
		}
		return nil, &net.OpError{Op: "route", Err: os.ErrNotExist}
	}
	h.allAddrs = func() ([]net.Addr, error) {
		return []net.Addr{mustCIDR("127.0.0.1/8"), mustCIDR("fe80::2/64"), mustCIDR("10.0.0.5/8")}, nil
	}
}

type testEnv struct {
	r     *Reporter
	out   *fakeOutbox
	rt    *fakeRuntime
	clock *fakeClock
	root  string
	fs    *fsStats
	notes *int64
	mu    *sync.Mutex
}

func (e *testEnv) notified() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return *e.notes
}

func testConfig() Config {
	return DefaultConfig("edge-1", "/var/lib/skerry/edgecore")
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestEnv builds a reporter over a fake host, outbox, runtime and clock.
func newTestEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	e := &testEnv{
		out:   newFakeOutbox(),
		rt:    &fakeRuntime{name: "containerd", ver: "2.1.4"},
		clock: newFakeClock(),
		root:  writeRoot(t, testFiles()),
		fs:    &fsStats{Total: 100 << 30, Free: 60 << 30},
		notes: new(int64),
		mu:    new(sync.Mutex),
	}
	r, err := New(cfg, Deps{
		Outbox:         e.out,
		Notify:         func() { e.mu.Lock(); *e.notes++; e.mu.Unlock() },
		Runtime:        e.rt,
		KubeletVersion: "v1.36.3-skerry-0.1.0",
		Logger:         discardLogger(),
		Clock:          e.clock,
		RootDir:        e.root,
	})
	if err != nil {
		t.Fatal(err)
	}
	fakeNet(r.host, e.fs)
	e.r = r
	return e
}

func decode[T any](t *testing.T, msg *wire.Message) *T {
	t.Helper()
	var v T
	if err := json.Unmarshal(msg.Content, &v); err != nil {
		t.Fatalf("decoding %s: %v", msg.Route.Resource, err)
	}
	return &v
}
