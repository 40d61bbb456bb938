// Package probe implements Edged's container probes (liveness, readiness, startup) and
// lifecycle hooks (postStart, preStop) with the kubelet's semantics, so workloads written
// for Kubernetes behave the same on an edge node.
package probe

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/skerry-io/skerry/edge/edged"
)

// Execer runs a command in a container and waits for it; the owner implements it over CRI
// ExecSync. timeout 0 means no timeout (ctx still applies). A timeout the runtime enforces
// must come back as an error for which errors.Is(err, context.DeadlineExceeded) or whose
// gRPC code is DeadlineExceeded.
type Execer interface {
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int32, err error)
}

// Config configures a Manager or a HookRunner.
type Config struct {
	Exec Execer
	// Event, if set, records the kubelet's Warning "Unhealthy" event for every failed or
	// errored probe (the sink deduplicates repeats).
	Event  func(ctx context.Context, pod *corev1.Pod, eventType, reason, message string)
	Logger *slog.Logger     // nil: discard
	Clock  clock.WithTicker // nil: the real clock; tests pass a fake one
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	return c
}

// kind is a probe's role.
type kind int

const (
	liveness kind = iota
	readiness
	startup
)

func (k kind) String() string {
	switch k {
	case liveness:
		return "Liveness"
	case readiness:
		return "Readiness"
	}
	return "Startup"
}

// maxRetries is how many times an attempt that errors is retried at once, as the kubelet.
const maxRetries = 3

// changesBuffer is the capacity of the Changes channel; more changes wait, coalesced per pod.
const changesBuffer = 64

// Manager runs the probes of running containers: one goroutine per probe of a container,
// as the kubelet, so a slow probe never delays another. It implements edged.Prober.
type Manager struct {
	log   *slog.Logger
	clock clock.WithTicker
	h     *handlers
	event func(ctx context.Context, pod *corev1.Pod, eventType, reason, message string)

	// ctx is cancelled when Run ends; every worker runs under it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	changes chan types.UID
	kick    chan struct{}

	mu         sync.Mutex
	containers map[string]*container
	pending    []types.UID // pods whose change is not yet on changes, in order
	isPending  map[types.UID]bool

	// afterIteration, when set (tests only), is called after each worker iteration.
	afterIteration func(containerID string, k kind, probed bool)
}

var _ edged.Prober = (*Manager)(nil)

// New returns a Manager. Run must run for workers to have an owner and for Changes to
// deliver.
func New(cfg Config) *Manager {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		log:        cfg.Logger,
		clock:      cfg.Clock,
		h:          newHandlers(cfg.Exec),
		event:      cfg.Event,
		ctx:        ctx,
		cancel:     cancel,
		changes:    make(chan types.UID, changesBuffer),
		kick:       make(chan struct{}, 1),
		containers: map[string]*container{},
		isPending:  map[types.UID]bool{},
	}
}

// Run delivers changes until ctx ends, then stops every worker and waits for them. Adds
// after that start no workers.
func (m *Manager) Run(ctx context.Context) error {
	defer func() {
		m.cancel()
		m.wg.Wait()
		m.h.transport.CloseIdleConnections()
	}()
	for {
		m.mu.Lock()
		var uid types.UID
		ok := len(m.pending) > 0
		if ok {
			uid = m.pending[0]
			m.pending = m.pending[1:]
			delete(m.isPending, uid)
		}
		m.mu.Unlock()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-m.kick:
			}
			continue
		}
		select {
		case m.changes <- uid:
		case <-ctx.Done():
			return nil
		}
	}
}

// Changes delivers the uid of a pod whose probe state changed. Changes of one pod that
// the reader has not yet taken are coalesced.
func (m *Manager) Changes() <-chan types.UID { return m.changes }

// notify queues uid for Changes without blocking; m.mu is held.
func (m *Manager) notify(uid types.UID) {
	if m.isPending[uid] {
		return
	}
	m.isPending[uid] = true
	m.pending = append(m.pending, uid)
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// container is one probed container; its result fields are guarded by Manager.mu.
type container struct {
	id        string
	uid       types.UID
	pod       string      // namespace/name, for logs
	obj       *corev1.Pod // what events are about
	c         *corev1.Container
	t         target
	startedAt time.Time
	cancel    context.CancelFunc
	// readyNow asks the readiness worker to probe at once (after startup succeeded).
	readyNow chan struct{}

	started   bool // startup probe succeeded
	ready     bool // readiness probe's result is success
	unhealthy bool
	message   string
}

func (ct *container) state() edged.ProbeState {
	started := ct.c.StartupProbe == nil || ct.started
	return edged.ProbeState{
		Started:   started,
		Ready:     started && (ct.c.ReadinessProbe == nil || ct.ready),
		Unhealthy: ct.unhealthy,
		Message:   ct.message,
	}
}

// Add starts probing a container; a second Add of the same containerID does nothing.
// initialDelaySeconds counts from the container's start time in pod.Status when it names
// this container (an adopted container), otherwise from now.
func (m *Manager) Add(pod *corev1.Pod, c *corev1.Container, containerID string, facts edged.Facts) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.containers[containerID]; ok {
		return
	}
	host, hostErr := podHost(pod, facts)
	cc := c.DeepCopy()
	ct := &container{
		id:        containerID,
		uid:       pod.UID,
		pod:       pod.Namespace + "/" + pod.Name,
		obj:       pod.DeepCopy(),
		c:         cc,
		t:         target{containerID: containerID, c: cc, host: host, hostErr: hostErr},
		startedAt: startedAt(pod, c.Name, containerID, m.clock.Now()),
		readyNow:  make(chan struct{}, 1),
	}
	m.containers[containerID] = ct
	if m.ctx.Err() != nil {
		m.log.Warn("probe manager stopped: container not probed", "pod", ct.pod, "container", c.Name)
		ct.cancel = func() {}
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	ct.cancel = cancel
	for k, p := range map[kind]*corev1.Probe{liveness: cc.LivenessProbe, readiness: cc.ReadinessProbe, startup: cc.StartupProbe} {
		if p == nil {
			continue
		}
		w := newWorker(m, ct, k, p)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			w.run(ctx)
		}()
	}
}

// startedAt is the container's start time from the pod status if it names this container.
func startedAt(pod *corev1.Pod, name, containerID string, now time.Time) time.Time {
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name != name || s.State.Running == nil || s.State.Running.StartedAt.IsZero() {
			continue
		}
		// Status IDs read "<runtime>://<id>".
		if id := s.ContainerID[strings.LastIndex(s.ContainerID, "/")+1:]; id == containerID && id != "" {
			if t := s.State.Running.StartedAt.Time; t.Before(now) {
				return t
			}
		}
	}
	return now
}

// Remove stops probing a container; its workers end soon after (a probe in flight is
// cancelled) and its results are dropped at once.
func (m *Manager) Remove(containerID string) {
	m.mu.Lock()
	ct, ok := m.containers[containerID]
	delete(m.containers, containerID)
	m.mu.Unlock()
	if ok {
		ct.cancel()
	}
}

// State returns a container's probe state.
func (m *Manager) State(containerID string) (edged.ProbeState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ct, ok := m.containers[containerID]
	if !ok {
		return edged.ProbeState{}, false
	}
	return ct.state(), true
}

// set records a result that passed its threshold and reports a state change.
func (m *Manager) set(ct *container, k kind, r result, output string) {
	m.mu.Lock()
	if m.containers[ct.id] != ct {
		m.mu.Unlock()
		return // removed meanwhile
	}
	before := ct.state()
	switch k {
	case startup:
		if r == success {
			ct.started = true
		} else if !ct.unhealthy {
			ct.unhealthy, ct.message = true, "Startup probe failed: "+output
		}
	case liveness:
		if r == failure && !ct.unhealthy {
			ct.unhealthy, ct.message = true, "Liveness probe failed: "+output
		}
	case readiness:
		ct.ready = r == success
	}
	after := ct.state()
	if before != after {
		m.notify(ct.uid)
	}
	m.mu.Unlock()
	if before != after {
		m.log.Info("probe state changed", "pod", ct.pod, "container", ct.c.Name, "probe", k.String(),
			"result", r.String(), "started", after.Started, "ready", after.Ready, "unhealthy", after.Unhealthy, "output", output)
	}
	if k == startup && r == success {
		select {
		case ct.readyNow <- struct{}{}:
		default:
		}
	}
}

func (m *Manager) started(ct *container) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return ct.c.StartupProbe == nil || ct.started
}

// worker runs one probe of one container, the kubelet's prober worker.
type worker struct {
	m       *Manager
	ct      *container
	kind    kind
	probe   *corev1.Probe
	period  time.Duration
	timeout time.Duration
	success int
	failure int
	lastRes result
	resRun  int
}

// newWorker applies the API's defaults to fields left zero (pods from the API server come
// defaulted already) and forces successThreshold 1 for liveness and startup, which the API
// validation requires.
func newWorker(m *Manager, ct *container, k kind, p *corev1.Probe) *worker {
	w := &worker{m: m, ct: ct, kind: k, probe: p,
		period: 10 * time.Second, timeout: time.Second, success: 1, failure: 3}
	if p.PeriodSeconds > 0 {
		w.period = time.Duration(p.PeriodSeconds) * time.Second
	}
	if p.TimeoutSeconds > 0 {
		w.timeout = time.Duration(p.TimeoutSeconds) * time.Second
	}
	if p.SuccessThreshold > 0 && k == readiness {
		w.success = int(p.SuccessThreshold)
	}
	if p.FailureThreshold > 0 {
		w.failure = int(p.FailureThreshold)
	}
	return w
}

// run probes at once, then on every tick of a period ticker started with the worker (as
// the kubelet, a probe slower than the period skips ticks), until ctx ends or the probe
// has nothing more to say.
func (w *worker) run(ctx context.Context) {
	ticker := w.m.clock.NewTicker(w.period)
	defer ticker.Stop()
	var trigger <-chan struct{}
	if w.kind == readiness {
		trigger = w.ct.readyNow
	}
	for {
		if ctx.Err() != nil {
			return
		}
		more, probed := w.once(ctx)
		if f := w.m.afterIteration; f != nil {
			f(w.ct.id, w.kind, probed)
		}
		if !more {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		case <-trigger:
		}
	}
}

// once is one iteration: it reports whether to go on and whether a probe ran.
func (w *worker) once(ctx context.Context) (more, probed bool) {
	if int32(w.m.clock.Since(w.ct.startedAt).Seconds()) < w.probe.InitialDelaySeconds {
		return true, false
	}
	if w.m.started(w.ct) {
		if w.kind == startup {
			return false, false
		}
	} else if w.kind != startup {
		return true, false // liveness and readiness wait for startup
	}
	var (
		r   result
		out string
		err error
	)
	for range maxRetries {
		if r, out, err = w.m.h.probe(ctx, w.probe, w.ct.t, w.timeout); err == nil || ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return false, true
	}
	if err != nil {
		// The kubelet throws away an attempt that could not run: the state stays as it was.
		w.m.log.Debug("probe errored", "pod", w.ct.pod, "container", w.ct.c.Name, "probe", w.kind.String(), "err", err)
		w.unhealthyEvent(ctx, w.kind.String()+" probe errored: "+err.Error())
		return true, true
	}
	if r == failure {
		w.m.log.Debug("probe failed", "pod", w.ct.pod, "container", w.ct.c.Name, "probe", w.kind.String(), "output", out)
		w.unhealthyEvent(ctx, w.kind.String()+" probe failed: "+out)
	}
	if w.lastRes == r {
		w.resRun++
	} else {
		w.lastRes, w.resRun = r, 1
	}
	if (r == failure && w.resRun < w.failure) || (r == success && w.resRun < w.success) {
		return true, true
	}
	w.m.set(w.ct, w.kind, r, out)
	switch {
	case r == failure && w.kind != readiness:
		// The container will be restarted (with a new ID, probed by a new worker); like the
		// kubelet, stop probing a dying container.
		return false, true
	case r == success && w.kind == startup:
		return false, true
	}
	return true, true
}

// unhealthyEvent records the kubelet's event for a probe that failed or could not run.
func (w *worker) unhealthyEvent(ctx context.Context, message string) {
	if w.m.event != nil {
		w.m.event(ctx, w.ct.obj, corev1.EventTypeWarning, "Unhealthy", message)
	}
}
