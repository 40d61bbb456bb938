// Package report sends what Edged learns about pods to the cloud through the durable outbox:
// pod status (coalesced per pod, and only when it changed), the end of a pod's deletion, and
// events.
//
// Events are written by [Reporter.Run], not by the pod worker that records them: each outbox
// write is an fsync'd commit, and a pod start records two or three events, so writing them
// inline would put those commits, queued behind every other pod's, on the start's critical
// path. Statuses stay inline: the pod is not Running for Kubernetes until its status is stored.
package report

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skerry-io/skerry/edge/edged"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Source is route.source of what Edged sends.
const Source = "edged"

// eventRepeat is how long an identical event (same pod, reason and message) is not sent
// again: a crash-looping container would otherwise fill the outbox with copies.
const eventRepeat = time.Minute

// eventQueue is how many events wait for Run before Event writes them itself.
const eventQueue = 1024

// Outbox is the part of the store's outbox the reporter writes to.
type Outbox interface {
	Enqueue(ctx context.Context, msg *wire.Message, class store.Class) (int64, error)
}

// Reporter implements edged.StatusSink.
type Reporter struct {
	outbox   Outbox
	notify   func()
	nodeName string
	log      *slog.Logger
	now      func() time.Time

	mu     sync.Mutex
	sent   map[types.UID][sha256.Size]byte // last status sent per pod
	events map[string]time.Time            // last time an event was sent, by pod uid+reason+message

	queue chan queuedEvent // events for Run to write
}

type queuedEvent struct {
	key     wire.Key
	content []byte
	pod     *corev1.Pod
	reason  string
}

var _ edged.StatusSink = (*Reporter)(nil)

// New returns a reporter; notify wakes the hub's sender after each enqueue (may be nil).
func New(outbox Outbox, notify func(), nodeName string, log *slog.Logger) *Reporter {
	if notify == nil {
		notify = func() {}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Reporter{outbox: outbox, notify: notify, nodeName: nodeName, log: log, now: time.Now,
		sent: make(map[types.UID][sha256.Size]byte), events: make(map[string]time.Time),
		queue: make(chan queuedEvent, eventQueue)}
}

// Run writes queued events to the outbox until ctx ends, then writes what is still queued.
func (r *Reporter) Run(ctx context.Context) error {
	// A write is one short commit: it is not cut off by the stop, and the store closes only
	// after Run returns, so what was recorded goes in first.
	write := context.WithoutCancel(ctx)
	for {
		select {
		case e := <-r.queue:
			r.writeEvent(write, e)
		case <-ctx.Done():
			for {
				select {
				case e := <-r.queue:
					r.writeEvent(write, e)
				default:
					return nil
				}
			}
		}
	}
}

func (r *Reporter) writeEvent(ctx context.Context, e queuedEvent) {
	if err := r.enqueue(ctx, wire.OpInsert, e.key, e.content, store.FIFO); err != nil {
		r.log.Warn("could not record event", "namespace", e.pod.Namespace, "pod", e.pod.Name, "reason", e.reason, "err", err)
	}
}

// podStatusContent is the upstream pod status (docs/protocol.md): the pod's identity and status.
type podStatusContent struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Status          corev1.PodStatus  `json:"status"`
}

// PodStatus enqueues the pod's status unless it equals the last one sent for this pod.
func (r *Reporter) PodStatus(ctx context.Context, pod *corev1.Pod, status corev1.PodStatus) error {
	content, err := json.Marshal(podStatusContent{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		Metadata: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Status:   status,
	})
	if err != nil {
		return fmt.Errorf("report: pod status of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	sum := sha256.Sum256(content)
	r.mu.Lock()
	same := r.sent[pod.UID] == sum
	r.mu.Unlock()
	if same {
		return nil
	}
	k := wire.Key{Namespace: pod.Namespace, Type: wire.TypePodStatus, Name: pod.Name}
	if err := r.enqueue(ctx, wire.OpUpdate, k, content, store.Coalesced); err != nil {
		return err
	}
	r.mu.Lock()
	r.sent[pod.UID] = sum
	r.mu.Unlock()
	return nil
}

// PodDeleted asks the cloud to finish the pod's deletion, and forgets its status.
func (r *Reporter) PodDeleted(ctx context.Context, pod *corev1.Pod) error {
	content, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": pod.UID}})
	if err != nil {
		return err
	}
	k := wire.Key{Namespace: pod.Namespace, Type: wire.TypePod, Name: pod.Name}
	if err := r.enqueue(ctx, wire.OpDelete, k, content, store.FIFO); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.sent, pod.UID)
	for key := range r.events {
		if len(key) > len(pod.UID) && key[:len(pod.UID)] == string(pod.UID) {
			delete(r.events, key)
		}
	}
	r.mu.Unlock()
	return nil
}

// Event records an event about the pod, as the kubelet would (source component "kubelet"
// so `kubectl describe` and tools filtering on it show it), skipping repeats within a minute.
// It queues the event for Run; when the queue is full it writes the event itself, so an
// event is never dropped for want of room.
func (r *Reporter) Event(ctx context.Context, pod *corev1.Pod, eventType, reason, message string) {
	now := r.now()
	key := string(pod.UID) + "\x00" + reason + "\x00" + message
	r.mu.Lock()
	if last, ok := r.events[key]; ok && now.Sub(last) < eventRepeat {
		r.mu.Unlock()
		return
	}
	r.events[key] = now
	r.mu.Unlock()

	name := pod.Name + "." + strconv.FormatInt(now.UnixNano(), 16)
	if len(name) > 253 {
		name = name[len(name)-253:]
	}
	ev := corev1.Event{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: "v1", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		},
		Reason:         reason,
		Message:        message,
		Type:           eventType,
		Source:         corev1.EventSource{Component: "kubelet", Host: r.nodeName},
		FirstTimestamp: metav1.NewTime(now),
		LastTimestamp:  metav1.NewTime(now),
		Count:          1,
	}
	content, err := json.Marshal(ev)
	if err != nil {
		r.log.Warn("could not record event", "namespace", pod.Namespace, "pod", pod.Name, "reason", reason, "err", err)
		return
	}
	e := queuedEvent{key: wire.Key{Namespace: pod.Namespace, Type: wire.TypeEvent, Name: name}, content: content, pod: pod, reason: reason}
	select {
	case r.queue <- e:
	default:
		r.writeEvent(ctx, e)
	}
}

func (r *Reporter) enqueue(ctx context.Context, op wire.Operation, k wire.Key, content []byte, class store.Class) error {
	m := wire.NewMessage(wire.Route{Source: Source, Group: wire.GroupResource, Operation: op, Resource: k.String()}, content)
	if _, err := r.outbox.Enqueue(ctx, m, class); err != nil {
		return fmt.Errorf("report: %s %s: %w", op, k, err)
	}
	r.notify()
	return nil
}
