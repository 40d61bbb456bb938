// Package staticpods runs static pods from a manifest directory (edged.staticPodPath) with
// the kubelet's semantics, and reports them to the cloud as mirror pods.
//
// Static pods reach the runner through the edge store, as local objects
// ([store.DB.PutLocal]) under the usual key <ns>/pod/<name>: the runner lists and watches
// them like the cloud's pods, so they run without the cloud and survive an edgecore restart,
// but the store leaves them out of the resync inventory and ignores cloud messages for their
// keys, so the cloud can neither delete nor overwrite them (in particular not with their own
// mirror pod, which the cloud sends back like any pod bound to the node and the runner never
// runs).
//
// The manager polls the directory every Period. A new file makes a static pod (uid: a hash
// of content and node) and asks the cloud for its mirror pod (insert <ns>/pod/<name>); a
// removed file deletes the static pod (the runner tears it down) and the mirror pod (delete
// with the static pod's uid, which cloudcore maps to the mirror pod carrying it as its
// config.mirror annotation); an edited file is a removal and a creation. Every MirrorPeriod
// the mirror pods are asked for again and the static pods' last status sent again, so a
// mirror pod a user deleted comes back with its status, as with the kubelet.
package staticpods

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skerry-io/skerry/edge/edged"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Defaults of Config.
const (
	DefaultPeriod       = 3 * time.Second
	DefaultMirrorPeriod = 20 * time.Second
)

// Source is route.source of what the manager sends.
const Source = "edged"

// Store is the part of the edge store the manager uses.
type Store interface {
	PutLocal(ctx context.Context, k wire.Key, content []byte) error
	DeleteLocal(ctx context.Context, k wire.Key) error
	ListLocal(ctx context.Context, typ wire.ResourceType) ([]store.Object, error)
}

// Outbox is the part of the outbox the manager writes to.
type Outbox interface {
	Enqueue(ctx context.Context, msg *wire.Message, class store.Class) (int64, error)
}

// Config configures a Manager. Dir, NodeName, Store and Outbox are required.
type Config struct {
	Dir          string
	NodeName     string
	Store        Store
	Outbox       Outbox
	Notify       func() // wakes the hub's sender after an enqueue; may be nil
	Period       time.Duration
	MirrorPeriod time.Duration
	Logger       *slog.Logger
}

// Manager keeps the store's static pods equal to the manifest directory.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex                  // serialises status reports of static pods with their resend
	statuses map[types.UID]reportedState // last status the runner reported, per static pod
	bad      map[string]string           // file → the error last logged, so it is logged once
}

type reportedState struct {
	namespace, name string
	status          corev1.PodStatus
}

// New checks cfg and fills in defaults.
func New(cfg Config) (*Manager, error) {
	switch {
	case !filepath.IsAbs(cfg.Dir):
		return nil, fmt.Errorf("staticpods: Dir %q must be an absolute path", cfg.Dir)
	case cfg.NodeName == "":
		return nil, errors.New("staticpods: NodeName is required")
	case cfg.Store == nil || cfg.Outbox == nil:
		return nil, errors.New("staticpods: Store and Outbox are required")
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	if cfg.Period <= 0 {
		cfg.Period = DefaultPeriod
	}
	if cfg.MirrorPeriod <= 0 {
		cfg.MirrorPeriod = DefaultMirrorPeriod
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg, log: cfg.Logger.With("component", "staticpods", "dir", cfg.Dir),
		statuses: map[types.UID]reportedState{}, bad: map[string]string{}}, nil
}

// Run syncs at once and then every Period until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	tick := time.NewTicker(m.cfg.Period)
	defer tick.Stop()
	lastMirror := time.Now()
	m.Sync(ctx, true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			resend := time.Since(lastMirror) >= m.cfg.MirrorPeriod
			if resend {
				lastMirror = time.Now()
			}
			m.Sync(ctx, resend)
		}
	}
}

// Sync makes the store's static pods those of the directory. resend asks for every mirror
// pod again and sends every static pod's last status again. Failures are logged and retried
// at the next sync.
func (m *Manager) Sync(ctx context.Context, resend bool) {
	want := m.read()
	objs, err := m.cfg.Store.ListLocal(ctx, wire.TypePod)
	if err != nil {
		m.log.Warn("listing static pods failed", "err", err)
		return
	}
	have := map[wire.Key]*corev1.Pod{}
	for _, o := range objs {
		var p corev1.Pod
		if err := json.Unmarshal(o.Content, &p); err != nil {
			m.log.Warn("stored static pod does not decode; removing it", "key", o.Key.String(), "err", err)
			p = corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: o.Key.Namespace, Name: o.Key.Name, UID: types.UID(o.UID)}}
		}
		have[o.Key] = &p
	}
	for k, p := range have {
		if w := want[k]; w != nil && w.UID == p.UID {
			continue
		}
		if err := m.remove(ctx, k, p); err != nil {
			m.log.Warn("removing static pod failed", "key", k.String(), "err", err)
			continue
		}
		delete(have, k)
	}
	for k, p := range want {
		if have[k] != nil {
			if resend {
				if err := m.mirror(ctx, k, p); err != nil {
					m.log.Warn("asking for mirror pod failed", "key", k.String(), "err", err)
				}
				m.resendStatus(ctx, p.UID)
			}
			continue
		}
		if err := m.add(ctx, k, p); err != nil {
			m.log.Warn("adding static pod failed", "key", k.String(), "err", err)
		}
	}
}

// add asks for the mirror pod first, so the outbox sends it before any status of the pod.
func (m *Manager) add(ctx context.Context, k wire.Key, p *corev1.Pod) error {
	if err := m.mirror(ctx, k, p); err != nil {
		return err
	}
	content, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding static pod: %w", err)
	}
	if err := m.cfg.Store.PutLocal(ctx, k, content); err != nil {
		return err
	}
	m.log.Info("static pod added", "pod", k.Namespace+"/"+k.Name, "uid", string(p.UID))
	return nil
}

func (m *Manager) remove(ctx context.Context, k wire.Key, p *corev1.Pod) error {
	if err := m.cfg.Store.DeleteLocal(ctx, k); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.statuses, p.UID)
	m.mu.Unlock()
	m.log.Info("static pod removed", "pod", k.Namespace+"/"+k.Name, "uid", string(p.UID))
	content, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": p.UID}})
	if err != nil {
		return fmt.Errorf("encoding mirror pod deletion: %w", err)
	}
	return m.enqueue(ctx, wire.OpDelete, k, content, store.FIFO)
}

// mirror asks the cloud for the static pod's mirror pod; coalesced, so a long disconnection
// leaves one request per pod.
func (m *Manager) mirror(ctx context.Context, k wire.Key, p *corev1.Pod) error {
	mp := Mirror(p, m.cfg.NodeName)
	mp.APIVersion, mp.Kind = "v1", "Pod"
	content, err := json.Marshal(mp)
	if err != nil {
		return fmt.Errorf("encoding mirror pod: %w", err)
	}
	return m.enqueue(ctx, wire.OpInsert, k, content, store.Coalesced)
}

func (m *Manager) enqueue(ctx context.Context, op wire.Operation, k wire.Key, content []byte, class store.Class) error {
	msg := wire.NewMessage(wire.Route{Source: Source, Group: wire.GroupResource, Operation: op, Resource: k.String()}, content)
	if _, err := m.cfg.Outbox.Enqueue(ctx, msg, class); err != nil {
		return fmt.Errorf("staticpods: %s %s: %w", op, k, err)
	}
	m.cfg.Notify()
	return nil
}

// read parses the directory's manifests. A file that cannot be read or parsed is logged
// (once per error) and skipped; of two files naming the same pod, the first by name wins.
func (m *Manager) read() map[wire.Key]*corev1.Pod {
	entries, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			m.logBad(m.cfg.Dir, err)
		}
		return map[wire.Key]*corev1.Pod{}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	want := map[wire.Key]*corev1.Pod{}
	seen := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		ext := strings.ToLower(filepath.Ext(name))
		if strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml" && ext != ".json") || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(m.cfg.Dir, name)
		seen[path] = true
		p, err := readManifest(path, m.cfg.NodeName)
		if err != nil {
			m.logBad(path, err)
			continue
		}
		k := wire.Key{Namespace: p.Namespace, Type: wire.TypePod, Name: p.Name}
		if want[k] != nil {
			m.logBad(path, fmt.Errorf("pod %s/%s is already defined by another file", p.Namespace, p.Name))
			continue
		}
		delete(m.bad, path)
		want[k] = p
	}
	for path := range m.bad {
		if !seen[path] && path != m.cfg.Dir {
			delete(m.bad, path)
		}
	}
	return want
}

func (m *Manager) logBad(path string, err error) {
	if m.bad[path] == err.Error() {
		return
	}
	m.bad[path] = err.Error()
	m.log.Warn("static pod manifest skipped", "file", path, "err", err)
}

func readManifest(path, node string) (*corev1.Pod, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	defer f.Close()
	content, err := io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	return Parse(content, node)
}

// StatusSink wraps the runner's status sink: it remembers each static pod's last status, so
// the manager can send it again for a re-created mirror pod.
func (m *Manager) StatusSink(inner edged.StatusSink) edged.StatusSink {
	return &statusSink{StatusSink: inner, m: m}
}

type statusSink struct {
	edged.StatusSink
	m *Manager
}

func (s *statusSink) PodStatus(ctx context.Context, pod *corev1.Pod, status corev1.PodStatus) error {
	if !IsStatic(pod) {
		return s.StatusSink.PodStatus(ctx, pod, status)
	}
	s.m.mu.Lock() // held across the enqueue so a resend never overtakes a newer status
	defer s.m.mu.Unlock()
	if err := s.StatusSink.PodStatus(ctx, pod, status); err != nil {
		return err
	}
	s.m.statuses[pod.UID] = reportedState{namespace: pod.Namespace, name: pod.Name, status: *status.DeepCopy()}
	return nil
}

// resendStatus sends the static pod's last status again, in the reporter's format
// (docs/protocol.md, pod status).
func (m *Manager) resendStatus(ctx context.Context, uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.statuses[uid]
	if !ok {
		return
	}
	content, err := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": st.name, "namespace": st.namespace, "uid": uid},
		"status":   st.status,
	})
	if err == nil {
		err = m.enqueue(ctx, wire.OpUpdate, wire.Key{Namespace: st.namespace, Type: wire.TypePodStatus, Name: st.name}, content, store.Coalesced)
	}
	if err != nil {
		m.log.Warn("sending static pod status again failed", "pod", st.namespace+"/"+st.name, "err", err)
	}
}
