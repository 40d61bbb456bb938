package runner

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"

	"github.com/skerry-io/skerry/edge/edged"
)

const (
	// callTimeout bounds a CRI call that does not wait for a container to stop.
	callTimeout = 2 * time.Minute
	// retryAfter is when a sync that failed for a passing reason is tried again.
	retryAfter = 10 * time.Second
	// resyncPeriod bounds how long a pod goes without a sync (as the kubelet's 1 min).
	resyncPeriod = time.Minute
)

// worker serializes the syncs of one pod. Triggers coalesce in the one-slot wake channel.
type worker struct {
	r    *Runner
	uid  types.UID
	wake chan struct{}

	// pod is the store's pod (nil: gone); guarded by r.mu.
	pod *corev1.Pod

	// The rest belongs to the worker's goroutine.
	log         *slog.Logger
	last        *corev1.Pod       // the last pod synced: what to tear down once it is gone
	crashBO     *backoff          // per backoffKey
	crashSeeded map[string]bool   // backoffKeys whose back-off was seeded from the runtime
	termMsgs    map[string]string // termination messages of exited containers, by container ID
	pullBO      *backoff          // per image
	waiting     map[string]*corev1.ContainerStateWaiting
	startTime   *metav1.Time
	conditions  map[corev1.PodConditionType]corev1.PodCondition
	terminal    corev1.PodPhase // Succeeded or Failed once reached: nothing runs again
	failReason  string
	failMessage string
	tornDown    bool // the pod's deletion was carried out
	deleted     bool // PodDeleted was reported
}

func newWorker(r *Runner, uid types.UID) *worker {
	return &worker{
		r:           r,
		uid:         uid,
		wake:        make(chan struct{}, 1),
		log:         r.log.With("uid", string(uid)),
		crashBO:     newBackoff(r.clock, 10*time.Second, 5*time.Minute),
		crashSeeded: map[string]bool{},
		termMsgs:    map[string]string{},
		pullBO:      newBackoff(r.clock, 10*time.Second, 5*time.Minute),
		conditions:  map[corev1.PodConditionType]corev1.PodCondition{},
	}
}

// poke asks for a sync; it never blocks.
func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) run(ctx context.Context) {
	defer w.r.wg.Done()
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var timerC <-chan time.Time
		if timer != nil {
			timerC = timer.C()
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timerC:
		}
		w.r.mu.Lock()
		pod := w.pod
		w.r.mu.Unlock()

		next, done := w.sync(ctx, pod)
		if done {
			w.r.mu.Lock()
			if w.pod == nil {
				delete(w.r.workers, w.uid)
				w.r.mu.Unlock()
				return
			}
			w.r.mu.Unlock()
			continue // the pod came back
		}
		if timer != nil {
			timer.Stop()
		}
		if next <= 0 || next > resyncPeriod {
			next = resyncPeriod
		}
		timer = w.r.clock.NewTimer(next)
	}
}

// sync brings the runtime in line with pod. It returns when to sync again, and done once
// a pod gone from the store has been torn down.
func (w *worker) sync(ctx context.Context, pod *corev1.Pod) (next time.Duration, done bool) {
	if pod == nil {
		if err := w.teardown(ctx, w.last, nil); err != nil {
			w.log.Error("tearing down a pod gone from the store failed; retrying", "err", err)
			return retryAfter, false
		}
		return 0, true
	}
	if w.last == nil || w.last.Name != pod.Name {
		w.log = w.r.log.With("pod", pod.Namespace+"/"+pod.Name, "uid", string(pod.UID))
	}
	w.last = pod
	if pod.DeletionTimestamp != nil {
		if !w.tornDown {
			grace := gracePeriod(pod)
			if err := w.teardown(ctx, pod, &grace); err != nil {
				w.log.Error("deleting the pod failed; retrying", "err", err)
				return retryAfter, false
			}
			w.tornDown = true
		}
		if !w.deleted {
			if err := w.r.cfg.Status.PodDeleted(ctx, pod); err != nil {
				w.log.Error("reporting the pod's deletion failed; retrying", "err", err)
				return retryAfter, false
			}
			w.deleted = true
			w.log.Info("pod deleted")
		}
		return 0, false
	}
	next, err := w.syncPod(ctx, pod)
	if err != nil {
		if ctx.Err() != nil {
			return 0, false
		}
		w.log.Error("pod sync failed", "err", err)
		if next <= 0 {
			next = retryAfter
		}
	}
	return next, false
}

// gracePeriod is how long the pod's containers get to stop when it is deleted.
func gracePeriod(pod *corev1.Pod) int64 {
	switch {
	case pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil:
		return *pod.DeletionGracePeriodSeconds
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

// ctr is one container of the pod as the runtime reports it.
type ctr struct {
	id        string
	name      string
	attempt   uint32
	sandboxID string
	state     runtimeapi.ContainerState
	createdAt int64
	status    *runtimeapi.ContainerStatus // nil if the runtime lost it between the calls
	labels    map[string]string
}

func (c *ctr) exited() bool { return c.state == runtimeapi.ContainerState_CONTAINER_EXITED }

func (c *ctr) running() bool { return c.state == runtimeapi.ContainerState_CONTAINER_RUNNING }

func (c *ctr) exitCode() int32 { return c.status.GetExitCode() }

func (c *ctr) startedAt() time.Time { return time.Unix(0, c.status.GetStartedAt()) }

func (c *ctr) finishedAt() time.Time { return time.Unix(0, c.status.GetFinishedAt()) }

// view is the runtime's state of one pod.
type view struct {
	sandboxes []*runtimeapi.PodSandbox // newest first
	current   *runtimeapi.PodSandbox   // sandboxes[0], or nil
	ip        string
	ips       []string
	byName    map[string][]*ctr // newest attempt first
	all       []*ctr
}

func (v *view) ready() bool {
	return v.current != nil && v.current.State == runtimeapi.PodSandboxState_SANDBOX_READY
}

// newest is the newest container called name; in sandbox sb unless sb is "".
func (v *view) newest(name, sb string) *ctr {
	for _, c := range v.byName[name] {
		if sb == "" || c.sandboxID == sb {
			return c
		}
	}
	return nil
}

// previous is the container called name before the newest.
func (v *view) previous(name string) *ctr {
	if cs := v.byName[name]; len(cs) > 1 {
		return cs[1]
	}
	return nil
}

func (v *view) nextAttempt(name string) uint32 {
	if cs := v.byName[name]; len(cs) > 0 {
		return cs[0].attempt + 1
	}
	return 0
}

// observe reads the pod's sandboxes and containers from the runtime, by label.
func (w *worker) observe(ctx context.Context) (*view, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rt := w.r.cfg.Runtime
	sel := map[string]string{edged.LabelPodUID: string(w.uid)}
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
	if err != nil {
		return nil, fmt.Errorf("ListPodSandbox: %w", err)
	}
	v := &view{byName: map[string][]*ctr{}, sandboxes: sbs.Items}
	sort.SliceStable(v.sandboxes, func(i, j int) bool {
		a, b := v.sandboxes[i], v.sandboxes[j]
		if a.GetMetadata().GetAttempt() != b.GetMetadata().GetAttempt() {
			return a.GetMetadata().GetAttempt() > b.GetMetadata().GetAttempt()
		}
		return a.CreatedAt > b.CreatedAt
	})
	if len(v.sandboxes) > 0 {
		v.current = v.sandboxes[0]
		if v.ready() {
			st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: v.current.Id})
			switch {
			case isNotFound(err):
				v.current.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
			case err != nil:
				return nil, fmt.Errorf("PodSandboxStatus: %w", err)
			default:
				v.current.State = st.GetStatus().GetState()
				if n := st.GetStatus().GetNetwork(); n != nil && n.Ip != "" {
					v.ip = n.Ip
					v.ips = []string{n.Ip}
					for _, a := range n.AdditionalIps {
						v.ips = append(v.ips, a.Ip)
					}
				}
			}
		}
	}
	cs, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
	if err != nil {
		return nil, fmt.Errorf("ListContainers: %w", err)
	}
	for _, c := range cs.Containers {
		x := &ctr{
			id: c.Id, name: c.GetMetadata().GetName(), attempt: c.GetMetadata().GetAttempt(),
			sandboxID: c.PodSandboxId, state: c.State, createdAt: c.CreatedAt, labels: c.Labels,
		}
		st, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
		switch {
		case isNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("ContainerStatus %s: %w", c.Id, err)
		}
		x.status = st.GetStatus()
		x.state = x.status.GetState()
		v.byName[x.name] = append(v.byName[x.name], x)
		v.all = append(v.all, x)
	}
	for _, list := range v.byName {
		sort.SliceStable(list, func(i, j int) bool {
			if list[i].attempt != list[j].attempt {
				return list[i].attempt > list[j].attempt
			}
			return list[i].createdAt > list[j].createdAt
		})
	}
	return v, nil
}

func isNotFound(err error) bool {
	return err != nil && status.Code(err) == codes.NotFound
}

// ignoreNotFound treats "already gone" as done.
func ignoreNotFound(err error) error {
	if isNotFound(err) {
		return nil
	}
	return err
}

// event records an event about pod through the sink, and logs it.
func (w *worker) event(ctx context.Context, pod *corev1.Pod, typ, reason, msg string) {
	if typ == corev1.EventTypeWarning {
		w.log.Warn(msg, "reason", reason)
	} else {
		w.log.Info(msg, "reason", reason)
	}
	if pod != nil {
		w.r.cfg.Status.Event(ctx, pod, typ, reason, msg)
	}
}
