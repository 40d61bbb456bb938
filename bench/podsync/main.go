// Command podsync measures EdgeController's pod sync end to end (issue 4): the time from a
// pod's creation in the API server to its commit in the edge store of the node it is bound
// to, the bytes sent down per pod, and cloudcore's RSS once everything is synced.
//
// It starts the real cloudcore binary with a generated configuration (its own ports, the
// admission webhook off), runs cmd/edgesim's hollow nodes in this process with a real edge
// store each (commit, fsync, then ack, as edgecore) and registration, waits until every node
// is registered and has committed its own Node, then creates pods bound to the nodes
// (spec.nodeName set, so no scheduler is involved) at a steady rate, or one at a time with
// -sequential. Everything it created (pods, namespace, Nodes, cloudcore, stores) is removed
// on exit. Needs the local control plane (hack/local-up.sh); bench/podsync.sh wraps it.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/skerry-io/skerry/cmd/edgesim/sim"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/wire"
)

// benchLabel marks the Nodes this benchmark registers, so cleanup deletes exactly those.
const benchLabel = "skerry.io/bench"

type options struct {
	kubeconfig, cloudcore, workDir, prefix, namespace string
	nodes, podsPerNode, workers                       int
	rate                                              float64
	sequential, automount, keep                       bool
	leaseEvery, syncTimeout                           time.Duration
	connectRate                                       float64
	wsPort, bootstrapPort, adminPort                  int
	kubeQPS                                           float64
	jsonOut                                           string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "podsync:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	flag.StringVar(&o.kubeconfig, "kubeconfig", "_output/local/kubeconfig", "kubeconfig of the cluster")
	flag.StringVar(&o.cloudcore, "cloudcore", "_output/bin/cloudcore", "cloudcore binary (make build)")
	flag.StringVar(&o.workDir, "work-dir", "", "directory for the config, logs and edge stores (default: a new temporary one, removed at exit)")
	flag.StringVar(&o.prefix, "prefix", "podsync", "node name prefix")
	flag.StringVar(&o.namespace, "namespace", "", "namespace to create the pods in (default: podsync-<unix time>; created and deleted here)")
	flag.IntVar(&o.nodes, "nodes", 1, "simulated edge nodes")
	flag.IntVar(&o.podsPerNode, "pods-per-node", 10, "pods bound to each node")
	flag.Float64Var(&o.rate, "rate", 50, "pod creations per second over all nodes")
	flag.IntVar(&o.workers, "workers", 8, "creates in flight at once (the rate is the bound unless the API server is slower)")
	flag.BoolVar(&o.sequential, "sequential", false, "create one pod, wait for its commit, then the next (latency without queueing)")
	flag.BoolVar(&o.automount, "automount-token", true, "let the pods mount the service-account token (false sets automountServiceAccountToken: false)")
	flag.DurationVar(&o.leaseEvery, "lease-every", 10*time.Second, "node Lease renewal interval (0: none)")
	flag.DurationVar(&o.syncTimeout, "timeout", 5*time.Minute, "deadline for each phase (registration, pod sync)")
	flag.Float64Var(&o.connectRate, "connect-rate", 500, "edgesim connection attempts per second")
	flag.IntVar(&o.wsPort, "ws-port", 22000, "cloudcore WebSocket port on 127.0.0.1")
	flag.IntVar(&o.bootstrapPort, "bootstrap-port", 22002, "cloudcore bootstrap port")
	flag.IntVar(&o.adminPort, "admin-port", 22006, "cloudcore admin port")
	flag.Float64Var(&o.kubeQPS, "cloudcore-kube-qps", 200, "cloudcore's kubeAPI.qps (burst twice that)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.jsonOut, "json", "", "also write the result as JSON to this file")
	flag.Parse()
	if o.nodes < 1 || o.podsPerNode < 1 || o.rate <= 0 || o.workers < 1 {
		return errors.New("-nodes, -pods-per-node, -rate and -workers must be positive")
	}
	if o.namespace == "" {
		o.namespace = fmt.Sprintf("podsync-%d", time.Now().Unix())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b := &bench{o: o, log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	defer b.cleanup()
	res, err := b.run(ctx)
	if err != nil {
		return err
	}
	res.print(os.Stdout)
	if o.jsonOut != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding result: %w", err)
		}
		if err := os.WriteFile(o.jsonOut, data, 0o644); err != nil {
			return fmt.Errorf("writing result: %w", err)
		}
	}
	return nil
}

// bench holds what a run started, so cleanup can undo exactly that.
type bench struct {
	o      options
	log    *slog.Logger
	client kubernetes.Interface
	work   string
	rmWork bool

	cloud     *exec.Cmd
	cloudDone chan error
	simStop   context.CancelFunc
	simDone   chan struct{}
	sim       *sim.Sim
	nsMade    bool

	track *tracker
}

func (b *bench) run(ctx context.Context) (*result, error) {
	o := b.o
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	if b.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if err := b.deleteNodes(ctx); err != nil { // leftovers of an interrupted run
		return nil, err
	}
	b.work = o.workDir
	if b.work == "" {
		if b.work, err = os.MkdirTemp("", "podsync-"); err != nil {
			return nil, fmt.Errorf("work dir: %w", err)
		}
		b.rmWork = !o.keep
	} else if err := os.MkdirAll(b.work, 0o700); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	if err := b.startCloudcore(ctx); err != nil {
		return nil, err
	}
	ca, err := b.loadCA(ctx)
	if err != nil {
		return nil, err
	}
	res := &result{Nodes: o.nodes, PodsPerNode: o.podsPerNode, Sequential: o.sequential, Automount: o.automount,
		LeaseEvery: o.leaseEvery.String(), CloudcoreKubeQPS: o.kubeQPS}
	res.RSSBaseKB, _ = rssKB(b.cloud.Process.Pid)

	if soft, _, err := sim.RaiseNoFileLimit(); err == nil && uint64(o.nodes)*8+256 > soft {
		b.log.Warn("open-file limit may be too low for the nodes' stores and connections", "soft", soft)
	}
	b.track = newTracker(o.namespace)
	t0 := time.Now()
	s, err := sim.New(sim.Config{
		Server: fmt.Sprintf("127.0.0.1:%d", o.wsPort), Nodes: o.nodes, CA: ca, Prefix: o.prefix,
		ConnectRate: o.connectRate, StoreDir: filepath.Join(b.work, "stores"),
		Register: true, LeaseInterval: o.leaseEvery, NodeLabels: map[string]string{benchLabel: "podsync"},
		OnCommit: b.track.commit, CountBytes: true, Log: b.log,
	})
	if err != nil {
		return nil, err
	}
	b.sim = s
	res.StoresOpenSeconds = time.Since(t0).Seconds()
	simCtx, simStop := context.WithCancel(context.Background())
	b.simStop, b.simDone = simStop, make(chan struct{})
	go func() { s.Run(simCtx); close(b.simDone) }()

	t0 = time.Now()
	if err := b.waitNodes(ctx); err != nil {
		return nil, err
	}
	res.RegisterSeconds = time.Since(t0).Seconds()
	fmt.Fprintf(os.Stderr, "podsync: %d nodes connected, registered and synced in %.1f s\n", o.nodes, res.RegisterSeconds)

	if err := b.makeNamespace(ctx); err != nil {
		return nil, err
	}
	res.RSSNodesKB, _ = rssKB(b.cloud.Process.Pid)
	before := s.Traffic()

	pods := b.plan()
	t0 = time.Now()
	if err := b.createPods(ctx, pods); err != nil {
		return nil, err
	}
	createdIn := time.Since(t0)
	if err := b.waitCommitted(ctx, pods); err != nil {
		return nil, err
	}
	res.RSSSyncedKB, _ = rssKB(b.cloud.Process.Pid)
	res.HWMKB, _ = statusKB(b.cloud.Process.Pid, "VmHWM")
	res.fill(pods, b.track, t0, createdIn, before, s.Traffic())
	res.Errors = s.Report().Errors
	return res, nil
}

func (b *bench) startCloudcore(ctx context.Context) error {
	o := b.o
	kubeconfig, err := filepath.Abs(o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig path: %w", err)
	}
	conf := fmt.Sprintf(`apiVersion: cloudcore.config.skerry.io/v1alpha1
kind: CloudCore
kubeAPI: {kubeconfig: %q, qps: %g, burst: %d}
hub:
  nodeLimit: %d
  websocket: {enable: true, address: "127.0.0.1:%d"}
  rateLimit: {qps: 10000, burst: 10000}
bootstrap: {address: "127.0.0.1:%d", advertiseAddresses: [127.0.0.1]}
admin: {address: "127.0.0.1:%d"}
admission: {enable: false}
`, kubeconfig, o.kubeQPS, int(2*o.kubeQPS), o.nodes+100, o.wsPort, o.bootstrapPort, o.adminPort)
	path := filepath.Join(b.work, "cloudcore.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("writing cloudcore config: %w", err)
	}
	logf, err := os.Create(filepath.Join(b.work, "cloudcore.log"))
	if err != nil {
		return fmt.Errorf("cloudcore log: %w", err)
	}
	// Not CommandContext: cleanup stops it with SIGTERM and waits, whatever ctx is.
	cmd := exec.Command(o.cloudcore, "--config", path)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting cloudcore: %w", err)
	}
	b.cloud, b.cloudDone = cmd, make(chan error, 1)
	go func() { b.cloudDone <- cmd.Wait(); _ = logf.Close() }()
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", o.adminPort)
	return poll(ctx, "cloudcore /readyz", time.Minute, func() (bool, error) {
		select {
		case err := <-b.cloudDone:
			b.cloudDone <- err
			return false, fmt.Errorf("cloudcore exited: %v (see %s)", err, logf.Name())
		default:
		}
		resp, err := http.Get(ready)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// loadCA reads cloudcore's CA (cert and key) from its Secret, so the nodes' certificates are
// ones cloudcore trusts.
func (b *bench) loadCA(ctx context.Context) (*pki.CA, error) {
	sec, err := b.client.CoreV1().Secrets("kubeedge").Get(ctx, "skerry-ca", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("CA secret: %w", err)
	}
	certPath, keyPath := filepath.Join(b.work, "ca.crt"), filepath.Join(b.work, "ca.key")
	if err := os.WriteFile(certPath, sec.Data[corev1.TLSCertKey], 0o600); err != nil {
		return nil, fmt.Errorf("writing CA: %w", err)
	}
	if err := os.WriteFile(keyPath, sec.Data[corev1.TLSPrivateKeyKey], 0o600); err != nil {
		return nil, fmt.Errorf("writing CA key: %w", err)
	}
	ca, err := pki.LoadCA(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	return ca, nil
}

// waitNodes waits until every node is connected, registered (its Node exists with the edge
// label) and has committed its own Node object: cloudcore's graph then holds the node.
func (b *bench) waitNodes(ctx context.Context) error {
	listed := 0
	err := poll(ctx, "nodes connected, registered and synced", b.o.syncTimeout, func() (bool, error) {
		if b.sim.ConnectedNow() < b.o.nodes || b.sim.Registered() < b.o.nodes || b.track.nodesSynced() < b.o.nodes {
			return false, nil
		}
		list, err := b.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: benchLabel + "=podsync," + sim.EdgeLabel})
		if err != nil {
			return false, nil
		}
		listed = len(list.Items)
		return listed >= b.o.nodes, nil
	})
	if err != nil {
		return fmt.Errorf("%w: connected %d, registered %d, own Node committed %d, Nodes listed %d of %d",
			err, b.sim.ConnectedNow(), b.sim.Registered(), b.track.nodesSynced(), listed, b.o.nodes)
	}
	return nil
}

func (b *bench) makeNamespace(ctx context.Context) error {
	_, err := b.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.o.namespace}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating namespace %s: %w", b.o.namespace, err)
	}
	b.nsMade = true
	// The ServiceAccount admission plugin refuses pods until the controller manager created
	// the namespace's default ServiceAccount.
	return poll(ctx, "ServiceAccount "+b.o.namespace+"/default", time.Minute, func() (bool, error) {
		_, err := b.client.CoreV1().ServiceAccounts(b.o.namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// podRef is one pod of the run and what was measured of it.
type podRef struct {
	name, node          string
	start, created, end time.Time // Create called, Create returned, commit on the node
}

// plan spreads the pods round-robin over the nodes, so each node's pods arrive spaced out.
func (b *bench) plan() []*podRef {
	pods := make([]*podRef, 0, b.o.nodes*b.o.podsPerNode)
	for j := range b.o.podsPerNode {
		for i := range b.o.nodes {
			pods = append(pods, &podRef{name: fmt.Sprintf("p-%d-%d", i, j), node: b.sim.NodeName(i)})
		}
	}
	return pods
}

func (b *bench) pod(p *podRef) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: b.o.namespace, Labels: map[string]string{"app": "podsync"}},
		Spec: corev1.PodSpec{
			NodeName:                      p.node,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers:                    []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if !b.o.automount {
		pod.Spec.AutomountServiceAccountToken = ptr.To(false)
	}
	return pod
}

func (b *bench) createPods(ctx context.Context, pods []*podRef) error {
	pc := b.client.CoreV1().Pods(b.o.namespace)
	create := func(p *podRef) error {
		p.start = time.Now()
		if _, err := pc.Create(ctx, b.pod(p), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating pod %s: %w", p.name, err)
		}
		p.created = time.Now()
		return nil
	}
	if b.o.sequential {
		for _, p := range pods {
			done := b.track.waiter(p.node, p.name)
			if err := create(p); err != nil {
				return err
			}
			select {
			case <-done:
			case <-time.After(b.o.syncTimeout):
				return fmt.Errorf("pod %s not committed on %s within %v", p.name, p.node, b.o.syncTimeout)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	lim := rate.NewLimiter(rate.Limit(b.o.rate), 1)
	work := make(chan *podRef)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range b.o.workers {
		wg.Go(func() {
			for p := range work {
				if err := create(p); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, p := range pods {
		if lim.Wait(ctx) != nil {
			break
		}
		work <- p
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d creates failed, first: %w", len(errs), len(pods), errs[0])
	}
	return ctx.Err()
}

func (b *bench) waitCommitted(ctx context.Context, pods []*podRef) error {
	// With token automount, the pods are synced once their PodTokens are committed too.
	err := poll(ctx, "every pod committed", b.o.syncTimeout, func() (bool, error) {
		return b.track.podsCommitted() >= len(pods) && (!b.o.automount || b.track.tokensCommitted() >= len(pods)), nil
	})
	if err != nil {
		return fmt.Errorf("%w (%d pods and %d PodTokens of %d committed)", err, b.track.podsCommitted(), b.track.tokensCommitted(), len(pods))
	}
	for _, p := range pods {
		p.end = b.track.podCommit(p.node, p.name)
	}
	return nil
}

// cleanup stops the nodes and cloudcore, then deletes what the run created. Every step has a
// deadline and runs even if an earlier one failed.
func (b *bench) cleanup() {
	if b.simStop != nil {
		b.simStop()
		<-b.simDone
	}
	if b.sim != nil {
		if err := b.sim.Close(); err != nil {
			b.log.Warn("closing stores", "err", err)
		}
	}
	if b.cloud != nil {
		_ = b.cloud.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.cloudDone:
		case <-time.After(20 * time.Second):
			_ = b.cloud.Process.Kill()
			<-b.cloudDone
		}
	}
	if b.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if b.nsMade {
			pods := b.client.CoreV1().Pods(b.o.namespace)
			// No kubelet finishes a graceful deletion here: delete at once.
			if err := pods.DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{}); err != nil {
				b.log.Warn("deleting pods", "err", err)
			}
			if err := b.client.CoreV1().Namespaces().Delete(ctx, b.o.namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				b.log.Warn("deleting namespace", "err", err)
			}
		}
		if err := b.deleteNodes(ctx); err != nil {
			b.log.Warn("deleting nodes", "err", err)
		}
	}
	if b.rmWork {
		_ = os.RemoveAll(b.work)
	}
}

// deleteNodes deletes the Nodes this benchmark registers and their Leases. The Node owns its
// Lease, but the garbage collector takes minutes for 1,000 of them, and a Lease left from the
// previous run would be updated by the next one, then collected under it.
func (b *bench) deleteNodes(ctx context.Context) error {
	err := b.client.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: benchLabel + "=podsync"})
	if err != nil {
		return fmt.Errorf("deleting nodes labelled %s=podsync: %w", benchLabel, err)
	}
	leases := b.client.CoordinationV1().Leases("kube-node-lease")
	names := make(chan string)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range 16 {
		wg.Go(func() {
			for name := range names {
				if err := leases.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					mu.Lock()
					first = cmp.Or(first, fmt.Errorf("deleting lease %s: %w", name, err))
					mu.Unlock()
				}
			}
		})
	}
	for i := range b.o.nodes {
		names <- fmt.Sprintf("%s-%d", b.o.prefix, i)
	}
	close(names)
	wg.Wait()
	return first
}

// poll calls cond every 50 ms until it is true, fails, or timeout passes.
func poll(ctx context.Context, what string, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func rssKB(pid int) (int64, error) { return statusKB(pid, "VmRSS") }

// statusKB reads one "<field>: N kB" line of /proc/<pid>/status.
func statusKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading status of %d: %w", pid, err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// tracker records the first commit of each pod of the namespace and of each node's Node.
type tracker struct {
	namespace string
	mu        sync.Mutex
	pods      map[string]time.Time // "<node>/<pod>"
	tokens    map[string]time.Time // "<node>/<pod>": the pod's PodTokens
	nodes     map[string]bool
	waiters   map[string]chan struct{}
}

func newTracker(namespace string) *tracker {
	return &tracker{namespace: namespace, pods: map[string]time.Time{}, tokens: map[string]time.Time{}, nodes: map[string]bool{}, waiters: map[string]chan struct{}{}}
}

// commit is the sim's OnCommit hook.
func (t *tracker) commit(node string, k wire.Key, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case k.Type == wire.TypeNode && k.Name == node:
		t.nodes[node] = true
	case k.Type == wire.TypeServiceAccountToken && k.Namespace == t.namespace:
		if _, seen := t.tokens[node+"/"+k.Name]; !seen {
			t.tokens[node+"/"+k.Name] = at
		}
	case k.Type == wire.TypePod && k.Namespace == t.namespace:
		id := node + "/" + k.Name
		if _, seen := t.pods[id]; seen {
			return // a later update or the delete; the first commit is the one measured
		}
		t.pods[id] = at
		if ch, ok := t.waiters[id]; ok {
			close(ch)
			delete(t.waiters, id)
		}
	}
}

// waiter returns a channel closed at the first commit of pod on node.
func (t *tracker) waiter(node, pod string) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch := make(chan struct{})
	if _, seen := t.pods[node+"/"+pod]; seen {
		close(ch)
	} else {
		t.waiters[node+"/"+pod] = ch
	}
	return ch
}

func (t *tracker) nodesSynced() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.nodes)
}

func (t *tracker) podsCommitted() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pods)
}

func (t *tracker) tokensCommitted() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.tokens)
}

func (t *tracker) podCommit(node, pod string) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pods[node+"/"+pod]
}

func (t *tracker) tokenCommit(node, pod string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.tokens[node+"/"+pod]
	return at, ok
}

// result is what one run measured. Durations are in milliseconds.
type result struct {
	Nodes             int     `json:"nodes"`
	PodsPerNode       int     `json:"pods_per_node"`
	Sequential        bool    `json:"sequential"`
	Automount         bool    `json:"automount_token"`
	LeaseEvery        string  `json:"lease_every"`
	CloudcoreKubeQPS  float64 `json:"cloudcore_kube_qps"`
	StoresOpenSeconds float64 `json:"stores_open_s"`
	RegisterSeconds   float64 `json:"register_s"`

	Pods          int     `json:"pods"`
	CreateRate    float64 `json:"create_rate"`     // pods created per second (Create calls)
	SyncedRate    float64 `json:"synced_rate"`     // pods committed per second, first create to last commit
	CreateCallP50 float64 `json:"create_call_p50"` // the Create call itself
	CreateCallP99 float64 `json:"create_call_p99"`
	P50           float64 `json:"p50"` // Create returned → committed on the node
	P90           float64 `json:"p90"`
	P99           float64 `json:"p99"`
	Max           float64 `json:"max"`
	Min           float64 `json:"min"`
	// FromStartP50/P99: Create called → committed.
	FromStartP50 float64 `json:"from_start_p50"`
	FromStartP99 float64 `json:"from_start_p99"`
	// Token*: Create returned → the pod's PodTokens committed (token automount only; the
	// tokens committed by the time the pods were all synced).
	Tokens   int     `json:"tokens"`
	TokenP50 float64 `json:"token_p50"`
	TokenP99 float64 `json:"token_p99"`
	TokenMax float64 `json:"token_max"`

	// Traffic is the downstream traffic per resource type while the pods were created and
	// synced; PodBytesPerPod counts pod messages only, AllBytesPerPod every type but node
	// (the Node updates that follow a registration: status, then the controller manager's
	// ttl annotation, may still be arriving).
	Traffic        map[string]sim.Traffic `json:"traffic"`
	PodBytesPerPod float64                `json:"pod_bytes_per_pod"`
	AllBytesPerPod float64                `json:"all_bytes_per_pod"`

	RSSBaseKB   int64 `json:"rss_base_kb"`   // cloudcore started, no node
	RSSNodesKB  int64 `json:"rss_nodes_kb"`  // nodes connected and registered, no pod
	RSSSyncedKB int64 `json:"rss_synced_kb"` // every pod synced
	HWMKB       int64 `json:"rss_peak_kb"`   // VmHWM then

	Errors map[string]int64 `json:"sim_errors"`
}

func (r *result) fill(pods []*podRef, t *tracker, t0 time.Time, createdIn time.Duration, before, after map[wire.ResourceType]sim.Traffic) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.Pods = len(pods)
	var lat, fromStart, calls, tok []time.Duration
	var last time.Time
	for _, p := range pods {
		lat = append(lat, p.end.Sub(p.created))
		fromStart = append(fromStart, p.end.Sub(p.start))
		calls = append(calls, p.created.Sub(p.start))
		if at, ok := t.tokenCommit(p.node, p.name); ok {
			tok = append(tok, at.Sub(p.created))
		}
		if p.end.After(last) {
			last = p.end
		}
	}
	slices.Sort(lat)
	slices.Sort(fromStart)
	slices.Sort(calls)
	r.P50, r.P90, r.P99 = ms(sim.Percentile(lat, 50)), ms(sim.Percentile(lat, 90)), ms(sim.Percentile(lat, 99))
	r.Min, r.Max = ms(lat[0]), ms(lat[len(lat)-1])
	r.FromStartP50, r.FromStartP99 = ms(sim.Percentile(fromStart, 50)), ms(sim.Percentile(fromStart, 99))
	r.CreateCallP50, r.CreateCallP99 = ms(sim.Percentile(calls, 50)), ms(sim.Percentile(calls, 99))
	if r.Tokens = len(tok); len(tok) > 0 {
		slices.Sort(tok)
		r.TokenP50, r.TokenP99, r.TokenMax = ms(sim.Percentile(tok, 50)), ms(sim.Percentile(tok, 99)), ms(tok[len(tok)-1])
	}
	r.CreateRate = float64(len(pods)) / createdIn.Seconds()
	r.SyncedRate = float64(len(pods)) / last.Sub(t0).Seconds()
	r.Traffic = map[string]sim.Traffic{}
	var all uint64
	for typ, a := range after {
		d := sim.Traffic{Messages: a.Messages - before[typ].Messages, Bytes: a.Bytes - before[typ].Bytes}
		if d.Messages == 0 {
			continue
		}
		r.Traffic[string(typ)] = d
		if typ != wire.TypeNode { // Node updates are the registration's tail, not the pods' cost
			all += d.Bytes
		}
	}
	r.PodBytesPerPod = float64(r.Traffic[string(wire.TypePod)].Bytes) / float64(len(pods))
	r.AllBytesPerPod = float64(all) / float64(len(pods))
}

func (r *result) print(w *os.File) {
	mode := fmt.Sprintf("%.0f pods/s requested", r.CreateRate)
	if r.Sequential {
		mode = "sequential"
	}
	fmt.Fprintf(w, "podsync: %d nodes x %d pods (%s, token automount %v, lease every %s)\n", r.Nodes, r.PodsPerNode, mode, r.Automount, r.LeaseEvery)
	fmt.Fprintf(w, "  stores opened in            %.1f s; nodes connected+registered+synced in %.1f s\n", r.StoresOpenSeconds, r.RegisterSeconds)
	fmt.Fprintf(w, "  pods                        %d, created at %.1f/s, synced at %.1f/s (first create to last commit)\n", r.Pods, r.CreateRate, r.SyncedRate)
	fmt.Fprintf(w, "  create call                 p50 %.1f ms, p99 %.1f ms\n", r.CreateCallP50, r.CreateCallP99)
	fmt.Fprintf(w, "  create returned -> commit   p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (min %.1f ms)\n", r.P50, r.P90, r.P99, r.Max, r.Min)
	fmt.Fprintf(w, "  create called -> commit     p50 %.1f ms, p99 %.1f ms\n", r.FromStartP50, r.FromStartP99)
	if r.Tokens > 0 {
		fmt.Fprintf(w, "  create returned -> token    p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d PodTokens committed)\n", r.TokenP50, r.TokenP99, r.TokenMax, r.Tokens)
	}
	fmt.Fprintf(w, "  bytes per pod               %.0f (pod messages), %.0f (all types but node)\n", r.PodBytesPerPod, r.AllBytesPerPod)
	for _, typ := range slices.Sorted(maps.Keys(r.Traffic)) {
		t := r.Traffic[typ]
		fmt.Fprintf(w, "    %-22s %6d messages %10d bytes (%.0f per message)\n", typ, t.Messages, t.Bytes, float64(t.Bytes)/float64(t.Messages))
	}
	fmt.Fprintf(w, "  cloudcore RSS               %.1f MB base, %.1f MB with nodes, %.1f MB synced (peak %.1f MB)\n",
		float64(r.RSSBaseKB)/1024, float64(r.RSSNodesKB)/1024, float64(r.RSSSyncedKB)/1024, float64(r.HWMKB)/1024)
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "  edgesim errors              %v\n", r.Errors)
	}
}
