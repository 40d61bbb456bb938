// Command podstart measures Edged (issue 5) with the real binaries: pod start latency from
// the edge store's commit to Running reported in the API server, for one pod at a time and
// for pods created in parallel, against the CRI floor (RunPodSandbox + CreateContainer +
// StartContainer of the same pod, called directly by this program); edgecore's RSS, PSS and
// CPU idle with no pods and with the parallel run's pods running.
//
// It pre-pulls the image through CRI, measures the floor, then starts the real cloudcore
// (its own ports, the admission webhook off) and one real edgecore (its own data dir and
// cgroup root, joined with a single-use token from keadm gettoken), creates a namespace and
// bound pods (spec.nodeName set, busybox running sleep 3600). The edge store's commit of a
// pod is observed as the ADDED event of a watch on the edge's MetaServer (it follows the
// commit); "Running reported" is the first API server watch event with the pod Running and
// its container running. Everything it created (pods, namespace, Node, Lease, token, CRI
// sandboxes, cgroups, processes, work directory) is removed at exit. Needs the local control
// plane and runtime (hack/local-up.sh); bench/podstart.sh wraps it.
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/skerry-io/skerry/edge/edged"
)

// edgeCgroupRoot is edgecore's edged.cgroupRoot here: its own, so a leftover is ours.
const edgeCgroupRoot = "/skerry-podstart"

type options struct {
	kubeconfig, cloudcore, edgecore, keadm, endpoint string
	image, node, namespace, workDir, jsonOut         string
	repeats, parallel                                int
	idle, settle, timeout                            time.Duration
	token, gctrace, keep, skipEdged                  bool
	pairs                                            int
	wsPort, bootstrapPort, adminPort                 int
	metaServer, edgedServer, containerdPIDFile       string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "podstart:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	flag.StringVar(&o.kubeconfig, "kubeconfig", "_output/local/kubeconfig", "kubeconfig of the cluster")
	flag.StringVar(&o.cloudcore, "cloudcore", "_output/bin/cloudcore", "cloudcore binary (make build)")
	flag.StringVar(&o.edgecore, "edgecore", "_output/bin/edgecore", "edgecore binary (make build)")
	flag.StringVar(&o.keadm, "keadm", "_output/bin/keadm", "keadm binary (make build)")
	flag.StringVar(&o.endpoint, "endpoint", "unix:///run/skerry/containerd/containerd.sock", "CRI endpoint")
	flag.StringVar(&o.image, "image", "127.0.0.1:5000/library/busybox:latest", "image of the pods (pre-pulled here)")
	flag.StringVar(&o.node, "node", "podstart-edge", "edge node name")
	flag.StringVar(&o.namespace, "namespace", "", "namespace of the pods (default podstart-<unix time>; created and deleted here)")
	flag.StringVar(&o.workDir, "work-dir", "", "directory for configs, logs and the edge's data (default: a new temporary one, removed at exit)")
	flag.IntVar(&o.repeats, "repeats", 20, "pods started one at a time (each deleted before the next)")
	flag.IntVar(&o.parallel, "parallel", 20, "pods created at once")
	flag.DurationVar(&o.idle, "idle", 60*time.Second, "window over which edgecore's CPU is measured when idle")
	flag.DurationVar(&o.settle, "settle", 10*time.Second, "wait before an idle measurement")
	flag.DurationVar(&o.timeout, "timeout", 2*time.Minute, "deadline of each wait")
	flag.BoolVar(&o.token, "token", true, "also run the one-at-a-time and parallel starts with the service-account token mounted")
	flag.BoolVar(&o.gctrace, "gctrace", true, "run edgecore with GODEBUG=gctrace=1 and print its last GC line with each memory figure")
	flag.IntVar(&o.pairs, "pairs", 3, "after the runs above, rounds of the parallel CRI floor immediately followed by the same number of Edged pods at once (no token), so each pair shares the machine's load")
	flag.BoolVar(&o.skipEdged, "cri-only", false, "measure only the CRI floor")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.jsonOut, "json", "", "also write the result as JSON to this file")
	flag.IntVar(&o.wsPort, "ws-port", 24000, "cloudcore WebSocket port on 127.0.0.1")
	flag.IntVar(&o.bootstrapPort, "bootstrap-port", 24002, "cloudcore bootstrap port")
	flag.IntVar(&o.adminPort, "admin-port", 24006, "cloudcore admin port")
	flag.StringVar(&o.metaServer, "metaserver", "127.0.0.1:24550", "edgecore metaServer.address")
	flag.StringVar(&o.edgedServer, "edged-server", "127.0.0.1:24350", "edgecore edged.server.address")
	flag.StringVar(&o.containerdPIDFile, "containerd-pid-file", "_output/runtime/pids/containerd.pid", "containerd's pid file, to read its CPU time during the parallel starts (\"\": not read)")
	flag.Parse()
	if o.repeats < 1 || o.parallel < 1 {
		return errors.New("-repeats and -parallel must be positive")
	}
	if o.namespace == "" {
		o.namespace = fmt.Sprintf("podstart-%d", time.Now().Unix())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b := &bench{o: o, res: &result{Namespace: o.namespace, Image: o.image, Node: o.node}}
	defer b.cleanup()
	if err := b.run(ctx); err != nil {
		return err
	}
	b.res.print(os.Stdout)
	if o.jsonOut != "" {
		data, err := json.MarshalIndent(b.res, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding result: %w", err)
		}
		if err := os.WriteFile(o.jsonOut, data, 0o644); err != nil {
			return fmt.Errorf("writing result: %w", err)
		}
	}
	return nil
}

// bench holds what a run started, so cleanup undoes exactly that.
type bench struct {
	o      options
	res    *result
	kube   kubernetes.Interface
	meta   kubernetes.Interface
	cri    *criClient
	work   string
	rmWork bool

	cloud, edge *process
	tokenID     string
	nodeMade    bool
	nsMade      bool
	stopWatch   context.CancelFunc
	watchDone   sync.WaitGroup
	track       *tracker
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "podstart: "+format+"\n", args...)
}

func (b *bench) run(ctx context.Context) error {
	o := b.o
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	if b.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if b.cri, err = dialCRI(o.endpoint); err != nil {
		return err
	}
	b.work = o.workDir
	if b.work == "" {
		if b.work, err = os.MkdirTemp("", "podstart-"); err != nil {
			return fmt.Errorf("work dir: %w", err)
		}
		b.rmWork = !o.keep
	} else if err := os.MkdirAll(b.work, 0o700); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}

	// The image once, so no start below pulls.
	t0 := time.Now()
	if err := b.cri.pull(ctx, o.image); err != nil {
		return err
	}
	b.res.PullMS = ms(time.Since(t0))

	// The CRI floor, before edgecore runs.
	progress("CRI floor: %d pods one at a time, then %d at once", o.repeats, o.parallel)
	if b.res.FloorSequential, err = b.cri.floor(ctx, b.work, o.image, o.repeats, false, nil); err != nil {
		return fmt.Errorf("CRI floor, sequential: %w", err)
	}
	ctrd0, _ := cpuTicks(b.containerdPID())
	t0 = time.Now()
	started := func() {
		ctrd1, _ := cpuTicks(b.containerdPID())
		b.res.FloorParallelCPU = &parallelCPU{WallS: time.Since(t0).Seconds(), ContainerdS: float64(ctrd1-ctrd0) / clockTicks}
	}
	if b.res.FloorParallel, err = b.cri.floor(ctx, b.work, o.image, o.parallel, true, started); err != nil {
		return fmt.Errorf("CRI floor, parallel: %w", err)
	}
	if o.skipEdged {
		return nil
	}

	if err := b.deleteNode(ctx); err != nil { // a leftover of an interrupted run
		return err
	}
	if err := b.startCloudcore(ctx); err != nil {
		return err
	}
	if err := b.startEdgecore(ctx); err != nil {
		return err
	}
	if err := b.makeNamespace(ctx); err != nil {
		return err
	}
	b.startWatches()

	progress("edgecore idle with 0 pods: settle %v, then %v", o.settle, o.idle)
	if b.res.Idle0, err = b.measureIdle(ctx); err != nil {
		return err
	}

	variants := []bool{false}
	if o.token {
		variants = append(variants, true)
	}
	for _, token := range variants {
		suffix := ""
		if token {
			suffix = "-token"
		}
		progress("%d pods one at a time (token %v)", o.repeats, token)
		seq, err := b.sequential(ctx, "podstart-seq"+suffix, token)
		if err != nil {
			return err
		}
		progress("%d pods at once (token %v)", o.parallel, token)
		edge0, _ := cpuTicks(b.edge.pid())
		ctrd0, _ := cpuTicks(b.containerdPID())
		t0 := time.Now()
		par, err := b.startParallel(ctx, "podstart-par"+suffix, token)
		if err != nil {
			return err
		}
		wall := time.Since(t0)
		edge1, _ := cpuTicks(b.edge.pid())
		ctrd1, _ := cpuTicks(b.containerdPID())
		b.res.ParallelCPU = append(b.res.ParallelCPU, parallelCPU{Token: token, WallS: wall.Seconds(),
			EdgecoreS: float64(edge1-edge0) / clockTicks, ContainerdS: float64(ctrd1-ctrd0) / clockTicks})
		if !token {
			progress("edgecore idle with %d pods: settle %v, then %v", o.parallel, o.settle, o.idle)
			if b.res.IdlePods, err = b.measureIdle(ctx); err != nil {
				return err
			}
			b.res.IdlePods.Pods = o.parallel
		}
		if err := b.deletePods(ctx, par); err != nil {
			return err
		}
		b.res.Runs = append(b.res.Runs, b.summarize("one at a time", token, seq), b.summarize("at once", token, par))
	}
	// Paired rounds: the floor and Edged back to back, so a difference is Edged's and not a
	// change of load between runs minutes apart.
	for i := range o.pairs {
		progress("pair %d of %d: CRI floor, %d pods at once, then Edged", i+1, o.pairs, o.parallel)
		floor, err := b.cri.floor(ctx, b.work, o.image, o.parallel, true, nil)
		if err != nil {
			return fmt.Errorf("pair %d, CRI floor: %w", i+1, err)
		}
		par, err := b.startParallel(ctx, fmt.Sprintf("podstart-pair%d", i+1), false)
		if err != nil {
			return err
		}
		if err := b.deletePods(ctx, par); err != nil {
			return err
		}
		b.res.Pairs = append(b.res.Pairs, pairRound{Floor: floor, Edged: par})
	}
	// After the pods are gone: what edgecore keeps.
	b.res.RSSAfterKB, _ = statusKB(b.edge.pid(), "VmRSS")
	b.res.HWMKB, _ = statusKB(b.edge.pid(), "VmHWM")
	return nil
}

// ---- processes ----

// process is a binary started here, with its log.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan error
	log  string
}

func startProcess(name, logPath string, env []string, bin string, args ...string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	// Not CommandContext: cleanup stops it with SIGTERM and waits, whatever ctx is.
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { p.done <- cmd.Wait(); _ = logf.Close() }()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// containerdPID is containerd's pid from its pid file, or 0.
func (b *bench) containerdPID() int {
	if b.o.containerdPIDFile == "" {
		return 0
	}
	data, err := os.ReadFile(b.o.containerdPIDFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// exited reports an error if the process has ended.
func (p *process) exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s exited: %v (see %s)", p.name, err, p.log)
	default:
		return nil
	}
}

// stop sends SIGTERM and waits up to 30 s, then kills.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(30 * time.Second):
		progress("%s did not stop within 30 s of SIGTERM: killing it", p.name)
		_ = p.cmd.Process.Kill()
		p.done <- <-p.done
	}
}

func httpOK(url string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (b *bench) startCloudcore(ctx context.Context) error {
	o := b.o
	kubeconfig, err := filepath.Abs(o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig path: %w", err)
	}
	conf := fmt.Sprintf(`apiVersion: cloudcore.config.skerry.io/v1alpha1
kind: CloudCore
kubeAPI: {kubeconfig: %q}
hub:
  websocket: {enable: true, address: "127.0.0.1:%d"}
  quic: {enable: false}
bootstrap: {address: "127.0.0.1:%d", advertiseAddresses: [127.0.0.1]}
admin: {address: "127.0.0.1:%d"}
admission: {enable: false}
`, kubeconfig, o.wsPort, o.bootstrapPort, o.adminPort)
	path := filepath.Join(b.work, "cloudcore.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("writing cloudcore config: %w", err)
	}
	if b.cloud, err = startProcess("cloudcore", filepath.Join(b.work, "cloudcore.log"), nil, o.cloudcore, "--config", path); err != nil {
		return err
	}
	return poll(ctx, "cloudcore /readyz", time.Minute, func() (bool, error) {
		if err := b.cloud.exited(); err != nil {
			return false, err
		}
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", o.adminPort)), nil
	})
}

var tokenIDRe = regexp.MustCompile(`keadm revoketoken (\S+)`)

func (b *bench) startEdgecore(ctx context.Context) error {
	o := b.o
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(tctx, o.keadm, "gettoken", "--kubeconfig", o.kubeconfig, "--node", o.node,
		"--single-use", "--ttl", "30m", "--description", "bench/podstart")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("keadm gettoken: %w: %s", err, stderr.String())
	}
	if m := tokenIDRe.FindStringSubmatch(stderr.String()); m != nil {
		b.tokenID = m[1]
	}
	dataDir := filepath.Join(b.work, "edge")
	conf := fmt.Sprintf(`apiVersion: edgecore.config.skerry.io/v1alpha1
kind: EdgeCore
nodeName: %s
dataDir: %s
runtime: {endpoint: %q}
hub:
  server: "127.0.0.1:%d"
  bootstrapServer: "127.0.0.1:%d"
  token: %q
metaServer: {address: %q}
edged:
  cgroupRoot: %s
  server: {address: %q}
eventBus: {internal: {address: "127.0.0.1:0"}}
deviceTwin: {dmi: {socket: %q}}
`, o.node, dataDir, o.endpoint, o.wsPort, o.bootstrapPort, strings.TrimSpace(string(out)), o.metaServer, edgeCgroupRoot, o.edgedServer,
		filepath.Join(b.work, "dmi.sock"))
	path := filepath.Join(b.work, "edgecore.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("writing edgecore config: %w", err)
	}
	var env []string
	if o.gctrace {
		env = append(env, "GODEBUG=gctrace=1")
	}
	t0 := time.Now()
	if b.edge, err = startProcess("edgecore", filepath.Join(b.work, "edgecore.log"), env, o.edgecore, "--config", path); err != nil {
		return err
	}
	b.nodeMade = true
	if b.meta, err = kubernetes.NewForConfig(&rest.Config{Host: "http://" + o.metaServer, QPS: 100, Burst: 200}); err != nil {
		return fmt.Errorf("metaserver client: %w", err)
	}
	err = poll(ctx, "node "+o.node+" Ready", o.timeout, func() (bool, error) {
		if err := b.edge.exited(); err != nil {
			return false, err
		}
		if !httpOK("http://" + o.metaServer + "/healthz") {
			return false, nil
		}
		n, err := b.kube.CoreV1().Nodes().Get(ctx, o.node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	b.res.EdgecoreReadyMS = ms(time.Since(t0))
	progress("edgecore joined and Ready in %.1f s (pid %d)", time.Since(t0).Seconds(), b.edge.pid())
	return nil
}

func (b *bench) makeNamespace(ctx context.Context) error {
	_, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.o.namespace}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating namespace %s: %w", b.o.namespace, err)
	}
	b.nsMade = true
	// The ServiceAccount admission plugin refuses pods until the default ServiceAccount exists.
	return poll(ctx, "ServiceAccount "+b.o.namespace+"/default", time.Minute, func() (bool, error) {
		_, err := b.kube.CoreV1().ServiceAccounts(b.o.namespace).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// ---- watches ----

// podTimes is what was observed of one pod.
type podTimes struct {
	called, created, commit, running time.Time
	gone                             bool
}

// tracker records, per pod name, the first edge commit and the first Running report.
type tracker struct {
	mu   sync.Mutex
	pods map[string]*podTimes
}

func (t *tracker) get(name string) *podTimes {
	p := t.pods[name]
	if p == nil {
		p = &podTimes{}
		t.pods[name] = p
	}
	return p
}

func (t *tracker) snapshot(name string) podTimes {
	t.mu.Lock()
	defer t.mu.Unlock()
	return *t.get(name)
}

func running(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) < len(p.Spec.Containers) {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running == nil {
			return false
		}
	}
	return true
}

func (b *bench) startWatches() {
	b.track = &tracker{pods: map[string]*podTimes{}}
	ctx, cancel := context.WithCancel(context.Background())
	b.stopWatch = cancel
	b.watchDone.Add(2)
	go func() {
		defer b.watchDone.Done()
		watchPods(ctx, b.meta, b.o.namespace, func(typ watch.EventType, p *corev1.Pod, at time.Time) {
			b.track.mu.Lock()
			defer b.track.mu.Unlock()
			if pt := b.track.get(p.Name); pt.commit.IsZero() && typ != watch.Deleted {
				pt.commit = at
			}
		})
	}()
	go func() {
		defer b.watchDone.Done()
		watchPods(ctx, b.kube, b.o.namespace, func(typ watch.EventType, p *corev1.Pod, at time.Time) {
			b.track.mu.Lock()
			defer b.track.mu.Unlock()
			pt := b.track.get(p.Name)
			if typ == watch.Deleted {
				pt.gone = true
			} else if pt.running.IsZero() && running(p) {
				pt.running = at
			}
		})
	}()
}

// watchPods watches the namespace's pods until ctx ends, re-watching after an error or a
// closed stream, and calls fn with each event and when it arrived.
func watchPods(ctx context.Context, c kubernetes.Interface, ns string, fn func(watch.EventType, *corev1.Pod, time.Time)) {
	rv := ""
	for ctx.Err() == nil {
		w, err := c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
		if err != nil {
			rv = ""
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		for ev := range w.ResultChan() {
			at := time.Now()
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				rv = "" // an error event: start again from the current state
				continue
			}
			rv = p.ResourceVersion
			fn(ev.Type, p, at)
		}
		w.Stop()
	}
}

// ---- runs ----

func (b *bench) pod(name string, token bool) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: b.o.namespace, Labels: map[string]string{"app": "podstart"}},
		Spec: corev1.PodSpec{
			NodeName:                      b.o.node,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			AutomountServiceAccountToken:  ptr.To(token),
			Containers: []corev1.Container{{
				Name: "main", Image: b.o.image, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sleep", "3600"},
			}},
		},
	}
}

func (b *bench) create(ctx context.Context, name string, token bool) error {
	called := time.Now()
	_, err := b.kube.CoreV1().Pods(b.o.namespace).Create(ctx, b.pod(name, token), metav1.CreateOptions{})
	created := time.Now()
	if err != nil {
		return fmt.Errorf("creating pod %s: %w", name, err)
	}
	b.track.mu.Lock()
	pt := b.track.get(name)
	pt.called, pt.created = called, created
	b.track.mu.Unlock()
	return nil
}

func (b *bench) waitRunning(ctx context.Context, names []string) error {
	err := poll(ctx, fmt.Sprintf("%d pods Running", len(names)), b.o.timeout, func() (bool, error) {
		if err := b.edge.exited(); err != nil {
			return false, err
		}
		b.track.mu.Lock()
		defer b.track.mu.Unlock()
		for _, n := range names {
			if b.track.get(n).running.IsZero() {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%w (%d of %d Running)", err, b.countRunning(names), len(names))
	}
	return nil
}

func (b *bench) countRunning(names []string) int {
	b.track.mu.Lock()
	defer b.track.mu.Unlock()
	n := 0
	for _, name := range names {
		if !b.track.get(name).running.IsZero() {
			n++
		}
	}
	return n
}

// sample is one pod's measurement.
type sample struct {
	Name string `json:"name"`
	// From the edge's commit (MetaServer ADDED) to Running in the API server's watch.
	CommitToRunningMS float64 `json:"commitToRunningMs"`
	// From Create returning, and from Create being called, to Running.
	CreateToRunningMS float64 `json:"createToRunningMs"`
	CalledToRunningMS float64 `json:"calledToRunningMs"`
	// From Create returning to the edge's commit.
	CreateToCommitMS float64 `json:"createToCommitMs"`
	// From the edge's commit to the container's start as containerd recorded it, and from
	// there to Running reported: the edge's own part and the status path's.
	CommitToStartedMS  float64 `json:"commitToStartedMs"`
	StartedToRunningMS float64 `json:"startedToRunningMs"`
	// From edgecore's log (millisecond timestamps, written after each step returned): the
	// edge commit to "sandbox started", to the Created event, to the Started event.
	CommitToSandboxMS   float64 `json:"commitToSandboxMs"`
	SandboxToCreatedMS  float64 `json:"sandboxToCreatedMs"`
	CreatedToStartEvtMS float64 `json:"createdToStartedEventMs"`
}

func (b *bench) sample(ctx context.Context, name string) (sample, error) {
	pt := b.track.snapshot(name)
	if pt.commit.IsZero() {
		return sample{}, fmt.Errorf("pod %s is Running but its commit was not seen on the MetaServer watch", name)
	}
	s := sample{
		Name:              name,
		CommitToRunningMS: ms(pt.running.Sub(pt.commit)),
		CreateToRunningMS: ms(pt.running.Sub(pt.created)),
		CalledToRunningMS: ms(pt.running.Sub(pt.called)),
		CreateToCommitMS:  ms(pt.commit.Sub(pt.created)),
	}
	started, err := b.cri.containerStarted(ctx, b.o.namespace, name)
	if err != nil {
		return s, err
	}
	s.CommitToStartedMS = ms(started.Sub(pt.commit))
	s.StartedToRunningMS = ms(pt.running.Sub(started))
	if l := edgeLog(b.edge.log, b.o.namespace+"/"+name); !l.sandbox.IsZero() && !l.created.IsZero() && !l.started.IsZero() {
		s.CommitToSandboxMS = ms(l.sandbox.Sub(pt.commit))
		s.SandboxToCreatedMS = ms(l.created.Sub(l.sandbox))
		s.CreatedToStartEvtMS = ms(l.started.Sub(l.created))
	}
	return s, nil
}

func (b *bench) sequential(ctx context.Context, prefix string, token bool) ([]sample, error) {
	var out []sample
	for i := range b.o.repeats {
		name := fmt.Sprintf("%s-%d", prefix, i)
		if err := b.create(ctx, name, token); err != nil {
			return nil, err
		}
		if err := b.waitRunning(ctx, []string{name}); err != nil {
			return nil, err
		}
		s, err := b.sample(ctx, name)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
		if err := b.deletePods(ctx, []sample{s}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// startParallel creates the pods at once (one goroutine each, released together) and waits
// until all are Running; they keep running.
func (b *bench) startParallel(ctx context.Context, prefix string, token bool) ([]sample, error) {
	names := make([]string, b.o.parallel)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	gate := make(chan struct{})
	for _, n := range names {
		wg.Go(func() {
			<-gate
			if err := b.create(ctx, n, token); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	close(gate)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := b.waitRunning(ctx, names); err != nil {
		return nil, err
	}
	out := make([]sample, 0, len(names))
	for _, n := range names {
		s, err := b.sample(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// deletePods deletes the pods and waits until the API server no longer has them (Edged
// has torn them down and reported so) and no sandbox of theirs is left in the runtime.
func (b *bench) deletePods(ctx context.Context, pods []sample) error {
	pc := b.kube.CoreV1().Pods(b.o.namespace)
	for _, p := range pods {
		if err := pc.Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting pod %s: %w", p.Name, err)
		}
	}
	return poll(ctx, fmt.Sprintf("%d pods deleted", len(pods)), b.o.timeout, func() (bool, error) {
		for _, p := range pods {
			if _, err := pc.Get(ctx, p.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return false, nil
			}
		}
		n, err := b.cri.sandboxes(ctx, map[string]string{edged.LabelNode: b.o.node})
		return err == nil && len(n) == 0, nil
	})
}

// ---- cleanup ----

// cleanup deletes what the run created, edge pods first while edgecore still runs (so Edged
// tears them down), then stops edgecore and cloudcore, and removes any sandbox of the node
// left in the runtime. Every step has a deadline and runs even if an earlier one failed.
func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if b.kube != nil && b.nsMade {
		pc := b.kube.CoreV1().Pods(b.o.namespace)
		if err := pc.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			progress("deleting pods: %v", err)
		}
		if b.edge != nil && b.edge.exited() == nil {
			err := poll(ctx, "the edge to remove its pods", time.Minute, func() (bool, error) {
				l, err := pc.List(ctx, metav1.ListOptions{})
				return err == nil && len(l.Items) == 0, nil
			})
			if err != nil {
				progress("%v", err)
			}
		}
		if err := b.kube.CoreV1().Namespaces().Delete(ctx, b.o.namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			progress("deleting namespace: %v", err)
		}
	}
	if b.stopWatch != nil {
		b.stopWatch()
		b.watchDone.Wait()
	}
	if b.edge != nil {
		b.edge.stop()
	}
	if b.cloud != nil {
		b.cloud.stop()
	}
	if b.cri != nil {
		// Whatever the node still has in the runtime (an interrupted run), and the floor's.
		if err := b.cri.removeSandboxes(ctx, map[string]string{edged.LabelNode: b.o.node}); err != nil {
			progress("removing the node's sandboxes: %v", err)
		}
		if err := b.cri.removeSandboxes(ctx, map[string]string{floorLabel: "true"}); err != nil {
			progress("removing the floor's sandboxes: %v", err)
		}
		removeCgroups(edgeCgroupRoot)
		removeCgroups(floorCgroupRoot)
		b.cri.close()
	}
	if b.kube != nil && b.nodeMade {
		if err := b.deleteNode(ctx); err != nil {
			progress("%v", err)
		}
	}
	if b.kube != nil && b.tokenID != "" {
		// Single-use: already gone once the node joined; revoke in case it did not.
		_ = exec.CommandContext(ctx, b.o.keadm, "revoketoken", "--kubeconfig", b.o.kubeconfig, b.tokenID).Run()
	}
	if b.rmWork {
		unmountUnder(b.work)
		if err := os.RemoveAll(b.work); err != nil {
			progress("removing %s: %v", b.work, err)
		}
	} else if b.work != "" {
		progress("work directory kept: %s", b.work)
	}
}

func (b *bench) deleteNode(ctx context.Context) error {
	if err := b.kube.CoreV1().Nodes().Delete(ctx, b.o.node, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting node %s: %w", b.o.node, err)
	}
	if err := b.kube.CoordinationV1().Leases("kube-node-lease").Delete(ctx, b.o.node, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting lease %s: %w", b.o.node, err)
	}
	return nil
}

// unmountUnder detaches every mount below dir (tmpfs volumes of pods an interrupted run
// left), deepest first, so the directory can be removed.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && strings.HasPrefix(fields[1], dir+"/") {
			mounts = append(mounts, fields[1])
		}
	}
	slices.SortFunc(mounts, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	for _, m := range mounts {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// poll calls cond every 10 ms until it is true, fails, or timeout passes.
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
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// lastGCLine is the last gctrace line of the log (GODEBUG=gctrace=1), or "".
func lastGCLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	last := ""
	sc := bufio.NewScanner(io.Reader(f))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "gc ") && strings.Contains(l, "MB goal") {
			last = l
		}
	}
	return last
}

// logTimes are the first times edgecore logged a pod's steps.
type logTimes struct{ sandbox, created, started time.Time }

// edgeLog finds the pod's "sandbox started", "Created container" and "Started container"
// lines in edgecore's log (slog text: time=RFC3339 with milliseconds first).
func edgeLog(path, pod string) logTimes {
	var lt logTimes
	f, err := os.Open(path)
	if err != nil {
		return lt
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, " pod="+pod+" ") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(l, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		switch {
		case lt.sandbox.IsZero() && strings.Contains(l, `msg="sandbox started"`):
			lt.sandbox = at
		case lt.created.IsZero() && strings.Contains(l, `msg="Created container`):
			lt.created = at
		case lt.started.IsZero() && strings.Contains(l, `msg="Started container`):
			lt.started = at
		}
	}
	return lt
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
