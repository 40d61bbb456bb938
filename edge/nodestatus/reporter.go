package nodestatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

const (
	// Source is the module name upstream messages carry, as KubeEdge's edged.
	Source = "edged"
	// LeaseNamespace holds the nodes' heartbeat Leases.
	LeaseNamespace = "kube-node-lease"
	// maxRuntimeTimeout bounds the runtime's version call, so that a hung runtime delays
	// the status by seconds and is then reported as unreachable.
	maxRuntimeTimeout = 5 * time.Second
)

// Runtime is the container runtime as the reporter sees it; the caller implements it over CRI.
type Runtime interface {
	// Version returns the runtime's name and version ("containerd", "2.1.0"). An error
	// means the runtime is unreachable, which makes the node not Ready.
	Version(ctx context.Context) (runtimeName, runtimeVersion string, err error)
}

// ImageLister is a Runtime that also lists its images, for status.images (optional).
type ImageLister interface {
	// Images returns the node's images, largest first and at most MaxImages, as the
	// kubelet reports them.
	Images(ctx context.Context) ([]corev1.ContainerImage, error)
}

// MaxImages is how many images the node status lists (the kubelet's default).
const MaxImages = 50

// Outbox is the part of *store.Outbox the reporter writes to.
type Outbox interface {
	Enqueue(ctx context.Context, msg *wire.Message, class store.Class) (int64, error)
}

// Deps are the reporter's collaborators and the facts it does not configure.
type Deps struct {
	// Outbox receives the messages. Required.
	Outbox Outbox
	// Notify wakes the sender after each enqueue (the hub's Notify). nil: nobody to wake.
	Notify func()
	// Runtime answers for the container runtime. nil means none is configured yet; the
	// node is then reported Ready (see the package documentation).
	Runtime Runtime
	// KubeletVersion is status.nodeInfo.kubeletVersion, e.g. "v1.36.3-skerry-0.4.0": the
	// Kubernetes version edgecore is compatible with. Required.
	KubeletVersion string
	// Logger receives structured logs; each names the node. nil: slog.Default().
	Logger *slog.Logger
	// Clock is the time source. nil: the real clock.
	Clock Clock
	// RootDir is prefixed to the /proc, /sys and /etc paths read. "" means "/"; tests
	// point it at a fake tree.
	RootDir string
}

// Reporter registers the node and keeps its status and Lease fresh. It is safe for
// concurrent use; Run may be called once.
type Reporter struct {
	cfg            Config
	outbox         Outbox
	notify         func()
	rt             Runtime
	kubeletVersion string
	clock          Clock
	log            *slog.Logger
	host           *host
	static         staticFacts
	runtimeTimeout time.Duration

	running    atomic.Bool
	registered chan struct{} // closed once the registration is in the outbox

	mu             sync.Mutex
	conds          map[corev1.NodeConditionType]corev1.NodeCondition // last computed, for transition times
	extra          map[corev1.NodeConditionType]corev1.NodeCondition // set by other modules
	runtimeVersion string                                            // last known "name://version"
	images         []corev1.ContainerImage                           // last known images
	fsTotal        uint64                                            // last known ephemeral-storage size
	internalIP     string                                            // last known
	hostname       string                                            // last known
	ipFailing      bool                                              // an IP detection failure was logged
	isRegistered   bool
	lastSent       *corev1.NodeStatus // last enqueued status, heartbeat times cleared
	lastSentAt     time.Time
}

// New checks cfg and reads the machine's static facts. It fails if the configuration is
// invalid or the node's CPU and memory capacity cannot be read.
func New(cfg Config, deps Deps) (*Reporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("nodestatus: %w", err)
	}
	if deps.Outbox == nil {
		return nil, errors.New("nodestatus: no outbox")
	}
	if deps.KubeletVersion == "" {
		return nil, errors.New("nodestatus: no kubelet version")
	}
	// The reporter keeps the configuration for its lifetime: copy what the caller could
	// still change under it.
	cfg.Labels = maps.Clone(cfg.Labels)
	cfg.Annotations = maps.Clone(cfg.Annotations)
	cfg.Taints = slices.Clone(cfg.Taints)
	cfg.SystemReserved = cfg.SystemReserved.DeepCopy()
	cfg.KubeReserved = cfg.KubeReserved.DeepCopy()

	r := &Reporter{
		cfg:            cfg,
		outbox:         deps.Outbox,
		notify:         deps.Notify,
		rt:             deps.Runtime,
		kubeletVersion: deps.KubeletVersion,
		clock:          deps.Clock,
		log:            deps.Logger,
		host:           newHost(deps.RootDir),
		runtimeTimeout: min(maxRuntimeTimeout, cfg.StatusUpdateFrequency.Duration),
		registered:     make(chan struct{}),
		extra:          map[corev1.NodeConditionType]corev1.NodeCondition{},
	}
	if r.notify == nil {
		r.notify = func() {}
	}
	if r.clock == nil {
		r.clock = realClock{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("node", cfg.NodeName)
	st, err := r.host.static()
	if err != nil {
		return nil, fmt.Errorf("nodestatus: %w", err)
	}
	r.static = st
	return r, nil
}

// Run registers the node, then keeps its status and Lease fresh until ctx is done. It
// returns nil then, once its goroutines have stopped, or an error if the outbox became
// unusable (corrupt or closed), since the node could no longer report anything.
func (r *Reporter) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("nodestatus: Run called more than once")
	}
	r.log.Info("node status reporter starting",
		"statusUpdateFrequency", r.cfg.StatusUpdateFrequency.Duration,
		"statusReportFrequency", r.cfg.StatusReportFrequency.Duration,
		"leaseRenewInterval", r.cfg.LeaseRenewInterval.Duration,
		"cpus", r.static.CPUs, "memory", r.static.MemoryTotal, "kernel", r.static.KernelVersion,
		"osImage", r.static.OSImage, "runtimeConfigured", r.rt != nil)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		errs  []error
	)
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
		cancel()
	}
	wg.Go(func() {
		if err := r.statusLoop(ctx); err != nil {
			fail(err)
		}
	})
	wg.Go(func() {
		if err := r.leaseLoop(ctx); err != nil {
			fail(err)
		}
	})
	wg.Wait()
	err := errors.Join(errs...)
	if err != nil {
		r.log.Error("node status reporter stopped", "err", err)
	} else {
		r.log.Info("node status reporter stopped")
	}
	return err
}

// statusLoop registers the node at once, then computes the status every
// StatusUpdateFrequency. Failed registrations are retried at each tick.
func (r *Reporter) statusLoop(ctx context.Context) error {
	return r.every(ctx, r.cfg.StatusUpdateFrequency.Duration, r.syncStatus)
}

// leaseLoop renews the Lease every LeaseRenewInterval, starting once the registration is
// queued: the cloud makes the Node the Lease's owner, so the Node must go up first (the
// outbox sends in enqueue order).
func (r *Reporter) leaseLoop(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case <-r.registered:
	}
	return r.every(ctx, r.cfg.LeaseRenewInterval.Duration, r.renewLease)
}

// every runs fn at once and then every period until ctx is done or fn fails.
func (r *Reporter) every(ctx context.Context, period time.Duration, fn func(context.Context) error) error {
	t := r.clock.NewTicker(period)
	defer t.Stop()
	if err := fn(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			if err := fn(ctx); err != nil {
				return err
			}
		}
	}
}

// syncStatus computes the status and enqueues the registration (until one succeeded) or a
// status update when the status changed or StatusReportFrequency has passed. Only an
// unusable outbox is an error; anything else is logged and retried at the next tick.
func (r *Reporter) syncStatus(ctx context.Context) error {
	status, hostname, now, err := r.compute(ctx)
	if err != nil {
		return nil // stopping: what was measured is not the node's state
	}
	bare := withoutHeartbeats(status)

	r.mu.Lock()
	registered := r.isRegistered
	changed := r.lastSent == nil || !equality.Semantic.DeepEqual(bare, r.lastSent)
	due := !registered || changed || now.Sub(r.lastSentAt) >= r.cfg.StatusReportFrequency.Duration
	r.mu.Unlock()
	if !due {
		return nil
	}

	var (
		msg   *wire.Message
		class store.Class
		what  string
	)
	if !registered {
		what, class = "registration", store.FIFO
		msg, err = r.message(wire.OpInsert, wire.Key{Type: wire.TypeNode, Name: r.cfg.NodeName}, r.cfg.node(status, hostname), now)
	} else {
		what, class = "node status", store.Coalesced
		msg, err = r.message(wire.OpUpdate, wire.Key{Type: wire.TypeNodeStatus, Name: r.cfg.NodeName}, r.cfg.statusNode(status), now)
	}
	if err != nil {
		return nil // logged by message; cannot happen with valid objects
	}
	if err := r.enqueue(ctx, what, msg, class); err != nil {
		return r.enqueueFailed(ctx, what, err)
	}

	r.mu.Lock()
	r.lastSent, r.lastSentAt = bare, now
	if !r.isRegistered {
		r.isRegistered = true
		close(r.registered)
	}
	r.mu.Unlock()
	if !registered {
		r.log.Info("node registration queued", "msgID", msg.Header.ID)
	} else {
		r.log.Debug("node status queued", "msgID", msg.Header.ID, "changed", changed)
	}
	return nil
}

// renewLease enqueues the heartbeat Lease with renewTime now.
func (r *Reporter) renewLease(ctx context.Context) error {
	now := r.clock.Now()
	msg, err := r.message(wire.OpUpdate, wire.Key{Namespace: LeaseNamespace, Type: wire.TypeLease, Name: r.cfg.NodeName}, r.lease(now), now)
	if err != nil {
		return nil
	}
	if err := r.enqueue(ctx, "lease", msg, store.Coalesced); err != nil {
		return r.enqueueFailed(ctx, "lease", err)
	}
	r.log.Debug("node lease queued", "msgID", msg.Header.ID)
	return nil
}

// lease is the node's coordination.k8s.io/v1 Lease renewed at now.
func (r *Reporter) lease(now time.Time) *coordinationv1.Lease {
	holder := r.cfg.NodeName
	duration := r.cfg.LeaseDurationSeconds
	renew := metav1.NewMicroTime(now)
	return &coordinationv1.Lease{
		TypeMeta:   metav1.TypeMeta{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
		ObjectMeta: metav1.ObjectMeta{Name: r.cfg.NodeName, Namespace: LeaseNamespace},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       &holder,
			LeaseDurationSeconds: &duration,
			RenewTime:            &renew,
		},
	}
}

func (r *Reporter) message(op wire.Operation, key wire.Key, obj any, now time.Time) (*wire.Message, error) {
	content, err := json.Marshal(obj)
	if err != nil {
		r.log.Error("encoding upstream object", "resource", key.String(), "err", err)
		return nil, fmt.Errorf("nodestatus: encoding %s: %w", key, err)
	}
	msg := wire.NewMessage(wire.Route{Source: Source, Group: wire.GroupResource, Operation: op, Resource: key.String()}, content)
	msg.Header.Timestamp = now.UnixMilli()
	return msg, nil
}

func (r *Reporter) enqueue(ctx context.Context, what string, msg *wire.Message, class store.Class) error {
	if _, err := r.outbox.Enqueue(ctx, msg, class); err != nil {
		return fmt.Errorf("nodestatus: queueing %s %s: %w", what, msg.Route.Resource, err)
	}
	r.notify()
	return nil
}

// enqueueFailed decides what a failed enqueue means: nothing while stopping, the end of
// the reporter when the store is unusable, a retry at the next tick otherwise (a full
// outbox or a full disk may clear).
func (r *Reporter) enqueueFailed(ctx context.Context, what string, err error) error {
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, store.ErrCorrupt), errors.Is(err, store.ErrClosed):
		return err
	}
	r.log.Warn("cannot queue "+what+", retrying at the next tick", "err", err)
	return nil
}

// compute measures the node and merges the result with the reporter's history. It fails
// only when ctx ends during the measurement: a runtime call cut short by a shutdown says
// nothing about the runtime, and must not turn the node not Ready.
func (r *Reporter) compute(ctx context.Context) (status corev1.NodeStatus, hostname string, now time.Time, err error) {
	o := r.observe(ctx)
	if err := ctx.Err(); err != nil {
		return corev1.NodeStatus{}, "", time.Time{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now = r.clock.Now()
	return r.buildLocked(o, now), r.hostname, now, nil
}

// observe does the measuring I/O, without holding the lock.
func (r *Reporter) observe(ctx context.Context) observation {
	o := observation{dyn: r.host.dynamic(r.cfg.DataDir, r.cfg.InternalIP)}
	if r.rt == nil {
		o.noRuntime = true
		return o
	}
	cctx, cancel := context.WithTimeout(ctx, r.runtimeTimeout)
	defer cancel()
	o.runtimeName, o.runtimeVersion, o.runtimeErr = r.rt.Version(cctx)
	if il, ok := r.rt.(ImageLister); ok && o.runtimeErr == nil {
		o.images, o.imagesErr = il.Images(cctx)
	}
	return o
}

func (r *Reporter) buildLocked(o observation, now time.Time) corev1.NodeStatus {
	d := o.dyn
	if d.FSErr == nil {
		r.fsTotal = d.FS.Total
	}
	if d.Hostname != "" {
		r.hostname = d.Hostname
	}
	switch {
	case d.InternalIP != "":
		if r.ipFailing || r.internalIP != d.InternalIP {
			r.log.Info("node internal IP", "ip", d.InternalIP, "previous", r.internalIP)
		}
		r.internalIP, r.ipFailing = d.InternalIP, false
	case !r.ipFailing:
		r.ipFailing = true
		r.log.Warn("cannot find the node's internal IP; set internalIP in the configuration",
			"err", d.IPErr, "keeping", r.internalIP)
	}
	if !o.noRuntime && o.runtimeErr == nil {
		r.runtimeVersion = o.runtimeName + "://" + o.runtimeVersion
	}
	if o.images != nil && o.imagesErr == nil {
		r.images = o.images
	}

	conds := r.cfg.conditions(r.static, o)
	for _, t := range sortedKeys(r.extra) {
		conds = append(conds, r.extra[t])
	}
	for _, c := range mergeConditions(r.conds, conds, now) {
		r.log.Info("node condition changed", "type", c.Type, "status", c.Status, "reason", c.Reason, "message", c.Message)
	}
	r.conds = make(map[corev1.NodeConditionType]corev1.NodeCondition, len(conds))
	for _, c := range conds {
		r.conds[c.Type] = c
	}

	capacity := r.cfg.capacity(r.static, r.fsTotal)
	return corev1.NodeStatus{
		Capacity:        capacity,
		Allocatable:     r.cfg.allocatable(capacity),
		Conditions:      conds,
		Addresses:       addresses(r.internalIP, r.hostname),
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: KubeletPort}},
		NodeInfo:        nodeInfo(r.static, r.kubeletVersion, r.runtimeVersion),
		Images:          r.images,
	}
}

// withoutHeartbeats is status with the heartbeat times cleared: what decides whether the
// status changed.
func withoutHeartbeats(s corev1.NodeStatus) *corev1.NodeStatus {
	c := s.DeepCopy()
	for i := range c.Conditions {
		c.Conditions[i].LastHeartbeatTime = metav1.Time{}
	}
	return c
}

// Status computes the node's status now, as the next report would carry it. It fails only
// if ctx ends first.
func (r *Reporter) Status(ctx context.Context) (corev1.NodeStatus, error) {
	s, _, _, err := r.compute(ctx)
	return s, err
}

// Node returns the node as registration sends it: metadata, spec.taints and a fresh status.
func (r *Reporter) Node(ctx context.Context) (*corev1.Node, error) {
	s, hostname, _, err := r.compute(ctx)
	if err != nil {
		return nil, err
	}
	return r.cfg.node(s, hostname), nil
}

// SetCondition adds or replaces a node condition another module owns (say, a device
// plugin's); it goes up with the next status computation. The reporter keeps its times:
// those of c are ignored. The built-in conditions cannot be set.
func (r *Reporter) SetCondition(c corev1.NodeCondition) error {
	if c.Type == "" || slices.Contains(builtinConditions(), c.Type) {
		return fmt.Errorf("nodestatus: condition type %q: empty or computed by the reporter", c.Type)
	}
	switch c.Status {
	case corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown:
	default:
		return fmt.Errorf("nodestatus: condition %s: status %q: want True, False or Unknown", c.Type, c.Status)
	}
	c.LastHeartbeatTime, c.LastTransitionTime = metav1.Time{}, metav1.Time{}
	r.mu.Lock()
	r.extra[c.Type] = c
	r.mu.Unlock()
	return nil
}

// ClearCondition stops reporting a condition set with SetCondition. The cloud keeps
// conditions the edge no longer reports (docs/protocol.md), so set it to a final status
// first if it should not linger.
func (r *Reporter) ClearCondition(t corev1.NodeConditionType) {
	r.mu.Lock()
	delete(r.extra, t)
	r.mu.Unlock()
}
