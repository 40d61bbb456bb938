// Package runner runs the node's pods on a CRI runtime with the kubelet's semantics: a
// level-triggered reconcile of the store's pods against the runtime's sandboxes and
// containers, one worker goroutine per pod.
//
// A running container whose spec changed (in a pod, only the image can) is replaced, as the
// kubelet does, by comparing a hash recorded on the container. The crash back-off survives an
// edgecore restart: it follows from the exited attempt's number and finish time, which the
// runtime keeps.
//
// Not done: native sidecars (init containers with restartPolicy) and ephemeral containers are
// refused; service environment variables (enableServiceLinks) are not injected, because
// Services are not synced to the edge yet.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/skerry-io/skerry/edge/edged"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Defaults of Config.
const (
	DefaultCgroupRoot   = "/kubepods"
	DefaultRelistPeriod = 5 * time.Second
	defaultCgroupFS     = "/sys/fs/cgroup"
	defaultResolvConf   = "/etc/resolv.conf"
)

// Config is what the runner needs. Runtime, Images, Store, Volumes, Env, Prober, Hooks,
// Status and Objects are required.
type Config struct {
	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient
	Store   *store.DB
	Volumes edged.Volumes
	Env     edged.Env
	Prober  edged.Prober
	Hooks   edged.Hooks
	Status  edged.StatusSink
	Objects edged.Objects

	NodeName, HostIP string
	// PodsDir holds <uid>/logs, the pods' CRI log directories.
	PodsDir string
	// CgroupRoot is the cgroupfs parent of every pod cgroup (<CgroupRoot>/pod<uid>).
	CgroupRoot string
	// CgroupFS is where the cgroup v1 controllers are mounted (default /sys/fs/cgroup);
	// tests point it elsewhere.
	CgroupFS string
	// ResolvConf is the host's resolver configuration (default /etc/resolv.conf), the base
	// of dnsPolicy Default.
	ResolvConf string
	// HostsFile is the host's hosts file (default /etc/hosts), the base of a hostNetwork
	// pod's /etc/hosts.
	HostsFile string
	// RelistPeriod is how often the runtime's state is polled: containerd 1.6 has no
	// container event stream.
	RelistPeriod time.Duration
	Logger       *slog.Logger
	Clock        clock.WithTicker
}

// Runner runs the pods of the store.
type Runner struct {
	cfg         Config
	log         *slog.Logger
	clock       clock.WithTicker
	runtimeName string // for containerIDs: "<runtime>://<id>"

	mu      sync.Mutex
	ctx     context.Context // Run's; workers run on it
	workers map[types.UID]*worker
	wg      sync.WaitGroup // one per worker goroutine

	// Owned by Run's goroutine.
	keys         map[wire.Key]types.UID // pod key → the uid the store holds under it
	fingerprints map[types.UID]string   // runtime state per pod at the last relist
}

// New checks cfg and fills in defaults.
func New(cfg Config) (*Runner, error) {
	switch {
	case cfg.Runtime == nil, cfg.Images == nil:
		return nil, errors.New("runner: Runtime and Images are required")
	case cfg.Store == nil:
		return nil, errors.New("runner: Store is required")
	case cfg.Volumes == nil, cfg.Env == nil, cfg.Prober == nil, cfg.Hooks == nil, cfg.Status == nil, cfg.Objects == nil:
		return nil, errors.New("runner: Volumes, Env, Prober, Hooks, Status and Objects are required")
	case cfg.PodsDir == "":
		return nil, errors.New("runner: PodsDir is required")
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = DefaultCgroupRoot
	}
	if cfg.CgroupFS == "" {
		cfg.CgroupFS = defaultCgroupFS
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = defaultResolvConf
	}
	if cfg.HostsFile == "" {
		cfg.HostsFile = "/etc/hosts"
	}
	if cfg.RelistPeriod <= 0 {
		cfg.RelistPeriod = DefaultRelistPeriod
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Runner{
		cfg:          cfg,
		log:          cfg.Logger.With("component", "edged.runner"),
		clock:        cfg.Clock,
		runtimeName:  "containerd",
		workers:      map[types.UID]*worker{},
		keys:         map[wire.Key]types.UID{},
		fingerprints: map[types.UID]string{},
	}, nil
}

// Run reconciles until ctx ends; then it waits for every pod worker to stop (pods keep
// running: a restarted Runner adopts them). Run may be called again after it returned.
func (r *Runner) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		r.wg.Wait()
		r.mu.Lock()
		r.workers = map[types.UID]*worker{}
		r.mu.Unlock()
		r.keys, r.fingerprints = map[wire.Key]types.UID{}, map[types.UID]string{}
	}()
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()

	if v, err := r.cfg.Runtime.Version(ctx, &runtimeapi.VersionRequest{}); err == nil && v.RuntimeName != "" {
		r.mu.Lock()
		r.runtimeName = v.RuntimeName
		r.mu.Unlock()
	} else if err != nil {
		r.log.Warn("runtime version unknown; assuming containerd", "err", err)
	}

	rev, err := r.resyncStore(ctx)
	if err != nil {
		return err
	}
	// The first relist finds what the runtime runs for pods the store no longer holds.
	r.relist(ctx)

	ticker := r.clock.NewTicker(r.cfg.RelistPeriod)
	defer ticker.Stop()
	for {
		w, err := r.cfg.Store.Watch(ctx, rev)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, store.ErrCompacted) {
				return fmt.Errorf("runner: watch pods: %w", err)
			}
			if rev, err = r.resyncStore(ctx); err != nil {
				return err
			}
			continue
		}
		err = r.follow(ctx, w, ticker)
		w.Stop()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		// The watcher fell behind or the log was compacted: list again.
		r.log.Info("store watch ended; listing pods again", "err", w.Err())
		if rev, err = r.resyncStore(ctx); err != nil {
			return err
		}
	}
}

// follow handles store events, relists and probe changes until the watcher ends. It
// returns an error only for one that listing again cannot cure.
func (r *Runner) follow(ctx context.Context, w *store.Watcher, ticker clock.Ticker) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events():
			if !ok {
				err := w.Err()
				if err == nil || errors.Is(err, store.ErrCompacted) || errors.Is(err, store.ErrWatcherTooSlow) {
					return nil
				}
				return fmt.Errorf("runner: store watch: %w", err)
			}
			r.handle(ev)
		case <-ticker.C():
			r.relist(ctx)
		case uid := <-r.cfg.Prober.Changes():
			r.poke(uid)
		}
	}
}

// resyncStore lists the store's pods, makes each the desired state of its worker, and
// marks every other worker's pod gone.
func (r *Runner) resyncStore(ctx context.Context) (int64, error) {
	objs, rev, err := r.cfg.Store.List(ctx, wire.TypePod, "")
	if err != nil {
		return 0, fmt.Errorf("runner: list pods: %w", err)
	}
	seen := map[types.UID]bool{}
	keys := map[wire.Key]types.UID{}
	for _, o := range objs {
		pod, err := decodePod(o.Content)
		if err != nil {
			r.log.Error("undecodable pod in store", "key", o.Key.String(), "err", err)
			continue
		}
		if isMirror(pod) {
			continue
		}
		seen[pod.UID] = true
		keys[o.Key] = pod.UID
		r.setDesired(pod.UID, pod)
	}
	r.mu.Lock()
	var gone []types.UID
	for uid, w := range r.workers {
		if !seen[uid] && w.pod != nil {
			gone = append(gone, uid)
		}
	}
	r.mu.Unlock()
	for _, uid := range gone {
		r.setDesired(uid, nil)
	}
	r.keys = keys
	return rev, nil
}

// handle routes one store event: pods to their worker; ConfigMaps, Secrets and tokens to
// the pods of the namespace that use them, so Volumes.Setup refreshes their content.
func (r *Runner) handle(ev store.Event) {
	k := ev.Object.Key
	switch k.Type {
	case wire.TypePod:
		var pod *corev1.Pod
		if ev.Type != store.Deleted {
			var err error
			if pod, err = decodePod(ev.Object.Content); err != nil {
				r.log.Error("undecodable pod in store", "key", k.String(), "err", err)
				return
			}
		}
		if ev.Type == store.Deleted || isMirror(pod) {
			uid := r.keys[k]
			if uid == "" {
				uid = types.UID(ev.Object.UID)
			}
			delete(r.keys, k)
			r.setDesired(uid, nil)
			return
		}
		if old := r.keys[k]; old != "" && old != pod.UID {
			r.setDesired(old, nil) // the name now holds another incarnation
		}
		r.keys[k] = pod.UID
		r.setDesired(pod.UID, pod)
	case wire.TypeConfigMap, wire.TypeSecret, wire.TypeServiceAccountToken:
		r.mu.Lock()
		var uids []types.UID
		for uid, w := range r.workers {
			if w.pod != nil && w.pod.Namespace == k.Namespace && usesObject(w.pod, k) {
				uids = append(uids, uid)
			}
		}
		r.mu.Unlock()
		for _, uid := range uids {
			r.poke(uid)
		}
	}
}

// usesObject reports whether pod refers to the ConfigMap, Secret or token k.
func usesObject(pod *corev1.Pod, k wire.Key) bool {
	if k.Type == wire.TypeServiceAccountToken {
		return true // tokens are per pod; resyncing the namespace's pods is cheap
	}
	name := k.Name
	isCM := k.Type == wire.TypeConfigMap
	for _, v := range pod.Spec.Volumes {
		switch {
		case isCM && v.ConfigMap != nil && v.ConfigMap.Name == name:
			return true
		case !isCM && v.Secret != nil && v.Secret.SecretName == name:
			return true
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if isCM && s.ConfigMap != nil && s.ConfigMap.Name == name || !isCM && s.Secret != nil && s.Secret.Name == name {
					return true
				}
			}
		}
	}
	if !isCM {
		for _, s := range pod.Spec.ImagePullSecrets {
			if s.Name == name {
				return true
			}
		}
	}
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for _, ef := range c.EnvFrom {
			if isCM && ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == name || !isCM && ef.SecretRef != nil && ef.SecretRef.Name == name {
				return true
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if isCM && e.ValueFrom.ConfigMapKeyRef != nil && e.ValueFrom.ConfigMapKeyRef.Name == name ||
				!isCM && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == name {
				return true
			}
		}
	}
	return false
}

// mirrorAnnotation marks a mirror pod: the API's copy of a static pod (edge/edged/staticpods).
// The static pod itself runs; its mirror, which the cloud sends back like any pod bound to
// the node, never does (the kubelet's rule).
const mirrorAnnotation = "kubernetes.io/config.mirror"

func isMirror(pod *corev1.Pod) bool {
	_, ok := pod.Annotations[mirrorAnnotation]
	return ok
}

func decodePod(content []byte) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	if err := json.Unmarshal(content, pod); err != nil {
		return nil, fmt.Errorf("decode pod: %w", err)
	}
	if pod.UID == "" {
		return nil, fmt.Errorf("pod %s/%s has no uid", pod.Namespace, pod.Name)
	}
	return pod, nil
}

// setDesired records what the store says about pod uid (nil: gone) and wakes its worker,
// starting one if needed.
func (r *Runner) setDesired(uid types.UID, pod *corev1.Pod) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.workers[uid]
	if w == nil {
		if pod == nil {
			return
		}
		w = r.startWorkerLocked(uid)
	}
	w.pod = pod
	w.poke()
}

// poke wakes pod uid's worker; a uid without one is an orphan the runtime still runs (a
// pod removed from the store while edged was down): a worker is started to tear it down.
func (r *Runner) poke(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.workers[uid]
	if w == nil {
		w = r.startWorkerLocked(uid)
	}
	w.poke()
}

func (r *Runner) startWorkerLocked(uid types.UID) *worker {
	w := newWorker(r, uid)
	r.workers[uid] = w
	r.wg.Add(1)
	go w.run(r.ctx)
	return w
}

// relist polls the runtime and wakes the worker of every pod whose sandboxes or containers
// changed state since the last relist.
func (r *Runner) relist(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	mine := map[string]string{edged.LabelNode: r.cfg.NodeName}
	sbs, err := r.cfg.Runtime.ListPodSandbox(cctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: mine}})
	if err != nil {
		r.log.Warn("relist: ListPodSandbox failed", "err", err)
		return
	}
	ctrs, err := r.cfg.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: mine}})
	if err != nil {
		r.log.Warn("relist: ListContainers failed", "err", err)
		return
	}
	parts := map[types.UID][]string{}
	for _, s := range sbs.Items {
		if uid := s.Labels[edged.LabelPodUID]; uid != "" {
			parts[types.UID(uid)] = append(parts[types.UID(uid)], "s"+s.Id+"="+s.State.String())
		}
	}
	for _, c := range ctrs.Containers {
		if uid := c.Labels[edged.LabelPodUID]; uid != "" {
			parts[types.UID(uid)] = append(parts[types.UID(uid)], "c"+c.Id+"="+c.State.String())
		}
	}
	fps := make(map[types.UID]string, len(parts))
	for uid, p := range parts {
		sort.Strings(p)
		fps[uid] = strings.Join(p, ",")
		if r.fingerprints[uid] != fps[uid] {
			r.poke(uid)
		}
	}
	for uid := range r.fingerprints {
		if _, ok := fps[uid]; !ok {
			r.mu.Lock()
			if w := r.workers[uid]; w != nil {
				w.poke()
			}
			r.mu.Unlock()
		}
	}
	r.fingerprints = fps
}

func (r *Runner) containerID(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runtimeName + "://" + id
}
