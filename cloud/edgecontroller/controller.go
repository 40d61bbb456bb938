// Package edgecontroller keeps every edge node's desired set in sync: shared informers feed the
// node graph, and a per-node reconcile turns the graph and the informer caches into exactly the
// upserts and deletes the node's hub queue needs. The same caches answer the resync on every
// (re)connect ([Controller.Desired]) and the edge's queries ([Controller.Object]).
//
// Nothing is polled: informers watch edge Nodes (by label), bound Pods (by field selector),
// ConfigMaps and Secrets; service-account tokens come from a [TokenSource], which says when a
// pod's tokens were reissued; Devices and DeviceModels come from a [DeviceSource]
// (package devicecontroller), which feeds the same graph and calls [Controller.NodeChanged].
package edgecontroller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skerry-io/skerry/cloud/edgecontroller/graph"
	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/cloud/hub/queue"
	"github.com/skerry-io/skerry/pkg/wire"
)

// ModuleName is route.source of what the controller sends.
const ModuleName = "edgecontroller"

// Sink queues messages for a node: the hub.
type Sink interface {
	Upsert(node string, key wire.Key, v queue.Version, msg *wire.Message) error
	Delete(node string, key wire.Key, uid string, msg *wire.Message) error
}

// TokenSource issues the service-account tokens of a pod (see package tokens).
type TokenSource interface {
	// Tokens returns the pod's token object and its version.
	Tokens(ctx context.Context, pod *corev1.Pod) (content json.RawMessage, resourceVersion string, err error)
	// Forget drops what is cached for a pod that left its edge node.
	Forget(namespace, pod string)
}

// DeviceSource serves the Devices and DeviceModels of node sets from its caches (package
// devicecontroller); it puts them into the graph itself.
type DeviceSource interface {
	// Object returns the Device or DeviceModel key names with apiVersion and kind set, or
	// ok=false when it does not exist. The result must not be modified.
	Object(key wire.Key) (obj metav1.Object, ok bool, err error)
	// Synced is closed once the graph holds every Device.
	Synced() <-chan struct{}
}

// Config configures a [Controller].
type Config struct {
	Client kubernetes.Interface
	Hub    Sink
	// Tokens issues service-account tokens; nil leaves token objects out of every set.
	Tokens TokenSource
	// Devices serves device objects; nil leaves them out of every set.
	Devices DeviceSource
	// Graph is the node graph to maintain; nil makes a new one. A [DeviceSource] that feeds
	// the graph needs it before the controller exists.
	Graph *graph.Graph
	// Workers reconcile nodes in parallel (default 4).
	Workers int
	// NodeGone is called when an edge Node is deleted or loses the edge label, so per-node
	// state elsewhere (cached Leases) can be dropped (optional).
	NodeGone func(node string)
	Logger   *slog.Logger
}

// Controller is EdgeController. Create it with [New], start it with [Controller.Run].
type Controller struct {
	cfg   Config
	log   *slog.Logger
	graph *graph.Graph

	nodeFactory, podFactory, factory informers.SharedInformerFactory
	nodes                            corelisters.NodeLister
	pods                             corelisters.PodLister
	configMaps                       corelisters.ConfigMapLister
	secrets                          corelisters.SecretLister
	synced                           chan struct{} // closed once every informer and handler has synced
	// handlers are the event handler registrations: the graph is built by the handlers, so
	// it is complete only when each has processed its informer's initial list.
	handlers []cache.ResourceEventHandlerRegistration

	queue workqueue.TypedRateLimitingInterface[string] // node names

	locksMu sync.Mutex
	locks   map[string]*sync.Mutex // one per node, taken by reconcile and resync

	sentMu sync.Mutex
	// sent is, per node, the version of every object last queued for it (by a reconcile or
	// a resync). A node without an entry has had no resync since cloudcore started: its
	// first connect sends it everything, so changes before that need not be queued.
	sent map[string]map[wire.Key]queue.Version
}

// New builds the informers; nothing runs until [Controller.Run].
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Hub == nil {
		return nil, errors.New("edgecontroller: Client and Hub are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Graph == nil {
		cfg.Graph = graph.New()
	}
	c := &Controller{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "edgecontroller"),
		graph:  cfg.Graph,
		synced: make(chan struct{}),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "edgecontroller"}),
		locks: make(map[string]*sync.Mutex),
		sent:  make(map[string]map[wire.Key]queue.Version),
	}
	// Only edge Nodes: a label selector keeps the rest of the cluster's nodes out of memory,
	// and a Node losing the label arrives as a delete.
	c.nodeFactory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = graph.EdgeNodeLabel }),
		informers.WithTransform(stripManagedFields))
	c.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTransform(stripManagedFields))

	nodeInf := c.nodeFactory.Core().V1().Nodes()
	// Bound pods only: unscheduled pods hold nothing on any node.
	c.podFactory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName!=" }),
		informers.WithTransform(stripManagedFields))
	podInf := c.podFactory.Core().V1().Pods()
	cmInf := c.factory.Core().V1().ConfigMaps()
	secretInf := c.factory.Core().V1().Secrets()
	c.nodes, c.pods, c.configMaps, c.secrets = nodeInf.Lister(), podInf.Lister(), cmInf.Lister(), secretInf.Lister()

	add := func(inf cache.SharedIndexInformer, h cache.ResourceEventHandler) error {
		reg, err := inf.AddEventHandler(h)
		if err == nil {
			c.handlers = append(c.handlers, reg)
		}
		return err
	}
	if err := add(nodeInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.nodeChanged(obj) },
		UpdateFunc: func(_, obj any) { c.nodeChanged(obj) },
		DeleteFunc: c.nodeDeleted,
	}); err != nil {
		return nil, err
	}
	if err := add(podInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.podChanged(obj) },
		UpdateFunc: func(_, obj any) { c.podChanged(obj) },
		DeleteFunc: c.podDeleted,
	}); err != nil {
		return nil, err
	}
	for _, inf := range []cache.SharedIndexInformer{cmInf.Informer(), secretInf.Informer()} {
		if err := add(inf, cache.ResourceEventHandlerFuncs{
			AddFunc:    c.referencedChanged,
			UpdateFunc: func(_, obj any) { c.referencedChanged(obj) },
			DeleteFunc: c.referencedChanged,
		}); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Graph is the node graph the controller maintains: the authorizer's scope.
func (c *Controller) Graph() *graph.Graph { return c.graph }

// Synced reports whether every informer has completed its first list.
func (c *Controller) Synced() bool {
	select {
	case <-c.synced:
		return true
	default:
		return false
	}
}

// Run starts the informers and the workers and blocks until ctx is done and all have stopped.
func (c *Controller) Run(ctx context.Context) error {
	defer c.queue.ShutDown()
	factories := []informers.SharedInformerFactory{c.nodeFactory, c.podFactory, c.factory}
	for _, f := range factories {
		f.Start(ctx.Done())
		defer f.Shutdown() // waits for the informers' goroutines
	}
	for _, f := range factories {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("edgecontroller: informer for %v did not sync", typ)
			}
		}
	}
	// A synced cache is not a synced handler: the graph is complete only once every handler
	// has seen its informer's initial list.
	synced := make([]cache.InformerSynced, len(c.handlers))
	for i, h := range c.handlers {
		synced[i] = h.HasSynced
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	if c.cfg.Devices != nil {
		select {
		case <-c.cfg.Devices.Synced():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	close(c.synced)
	c.log.Info("informers synced", "edgeNodes", len(c.graph.Nodes()))

	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

func (c *Controller) processNext(ctx context.Context) bool {
	node, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(node)
	rctx, cancel := context.WithTimeout(ctx, syncDeadline)
	defer cancel()
	if err := c.reconcile(rctx, node); err != nil {
		c.log.Warn("sync of node failed, will retry", "node", node, "err", err)
		c.queue.AddRateLimited(node)
		return true
	}
	c.queue.Forget(node)
	return true
}

// LockNode serializes everything that queues for node (hub.NodeLocker).
func (c *Controller) LockNode(node string) (unlock func()) {
	c.locksMu.Lock()
	l := c.locks[node]
	if l == nil {
		l = new(sync.Mutex)
		c.locks[node] = l
	}
	c.locksMu.Unlock()
	l.Lock()
	return l.Unlock
}

// Desired is the node's desired set for a resync (hub.DesiredSource); the caller holds the
// node's lock ([Controller.LockNode]). It waits for the informers' first sync, since an
// answer from half-filled caches would delete objects from the edge.
func (c *Controller) Desired(ctx context.Context, node string) (map[wire.Key]hub.Object, error) {
	select {
	case <-c.synced:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// The resync runs on the node's upstream goroutine: bound what it waits for (tokens not
	// cached yet), and leave what it could not build to the asynchronous reconcile.
	bctx, cancel := context.WithTimeout(ctx, resyncBuildDeadline)
	defer cancel()
	set, failed := c.build(bctx, node)
	c.sentMu.Lock()
	c.sent[node] = versions(set)
	c.sentMu.Unlock()
	if len(failed) > 0 {
		for k := range failed {
			set[k] = hub.Object{Keep: true} // neither deleted nor re-sent: the edge keeps it
		}
		c.log.Info("resync leaves objects it could not build yet to a later sync", "node", node, "count", len(failed))
		c.queue.AddRateLimited(node)
	}
	return set, nil
}

func versions(set map[wire.Key]hub.Object) map[wire.Key]queue.Version {
	v := make(map[wire.Key]queue.Version, len(set))
	for k, o := range set {
		v[k] = o.Version
	}
	return v
}

// reconcile queues the difference between the node's desired set and what was last queued
// for it.
func (c *Controller) reconcile(ctx context.Context, node string) error {
	defer c.LockNode(node)()
	c.sentMu.Lock()
	sent, known := c.sent[node]
	c.sentMu.Unlock()
	if !known {
		return nil // no resync yet: the first connect sends the whole set
	}
	set, failed := c.build(ctx, node)
	next := make(map[wire.Key]queue.Version, len(set))
	var errs []error
	for k, o := range set {
		next[k] = o.Version
		if old, ok := sent[k]; ok && old == o.Version {
			continue
		}
		old, had := sent[k]
		msg, err := o.Message()
		if err == nil && had && old.UID != o.Version.UID {
			// Another object under the same name: the old one is deleted first, as a resync
			// would, so the edge never sees one object turn into another.
			var del *wire.Message
			if del, err = hub.NewDeleteMessage(k, old.UID); err == nil {
				err = c.cfg.Hub.Delete(node, k, old.UID, del)
			}
			had = false
		}
		if err == nil {
			if !had {
				msg.Route.Operation = wire.OpInsert
			}
			err = c.cfg.Hub.Upsert(node, k, o.Version, msg)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("upsert %s: %w", k, err))
			if old, ok := sent[k]; ok {
				next[k] = old
			} else {
				delete(next, k)
			}
		}
	}
	for k, old := range sent {
		if _, ok := set[k]; ok {
			continue
		}
		if _, ok := failed[k]; ok {
			next[k] = old // could not be built this time: keep what the edge has
			continue
		}
		msg, err := hub.NewDeleteMessage(k, old.UID)
		if err == nil {
			err = c.cfg.Hub.Delete(node, k, old.UID, msg)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %s: %w", k, err))
			next[k] = old
		}
	}
	c.sentMu.Lock()
	// Kept even when empty (a Node deleted or unlabelled): if it comes back while its edge is
	// still connected, there is no resync to send it its set, so the reconcile must.
	c.sent[node] = next
	c.sentMu.Unlock()
	for k, err := range failed {
		errs = append(errs, fmt.Errorf("%s: %w", k, err))
	}
	return errors.Join(errs...)
}

// build reads every object of the node's set from the caches. Objects that do not exist (a
// ConfigMap referenced before it is created) are simply absent; failed holds the keys that
// could not be built now (a token the API server did not issue).
func (c *Controller) build(ctx context.Context, node string) (map[wire.Key]hub.Object, map[wire.Key]error) {
	keys := c.graph.Referenced(node)
	set := make(map[wire.Key]hub.Object, len(keys))
	var failed map[wire.Key]error
	for _, k := range keys {
		o, ok, err := c.object(ctx, k)
		switch {
		case err != nil:
			if failed == nil {
				failed = make(map[wire.Key]error)
			}
			failed[k] = err
		case ok:
			set[k] = o
		}
	}
	return set, failed
}

// object returns one object of a set, with a builder for its message.
func (c *Controller) object(ctx context.Context, k wire.Key) (hub.Object, bool, error) {
	var (
		meta metav1.Object
		body func() ([]byte, error)
	)
	switch k.Type {
	case wire.TypeNode:
		n, err := c.nodes.Get(k.Name)
		if err != nil {
			return absent(err)
		}
		meta, body = n, func() ([]byte, error) { cp := *n; cp.TypeMeta = coreTypeMeta("Node"); return json.Marshal(&cp) }
	case wire.TypePod:
		p, err := c.pods.Pods(k.Namespace).Get(k.Name)
		if err != nil {
			return absent(err)
		}
		meta, body = p, func() ([]byte, error) { cp := *p; cp.TypeMeta = coreTypeMeta("Pod"); return json.Marshal(&cp) }
	case wire.TypeConfigMap:
		cm, err := c.configMaps.ConfigMaps(k.Namespace).Get(k.Name)
		if err != nil {
			return absent(err)
		}
		meta, body = cm, func() ([]byte, error) {
			cp := *cm
			cp.TypeMeta = coreTypeMeta("ConfigMap")
			return json.Marshal(&cp)
		}
	case wire.TypeSecret:
		s, err := c.secrets.Secrets(k.Namespace).Get(k.Name)
		if err != nil {
			return absent(err)
		}
		meta, body = s, func() ([]byte, error) { cp := *s; cp.TypeMeta = coreTypeMeta("Secret"); return json.Marshal(&cp) }
	case wire.TypeDevice, wire.TypeDeviceModel:
		if c.cfg.Devices == nil {
			return hub.Object{}, false, nil
		}
		o, ok, err := c.cfg.Devices.Object(k)
		if err != nil || !ok {
			return hub.Object{}, ok, err
		}
		meta, body = o, func() ([]byte, error) { return json.Marshal(o) }
	case wire.TypeServiceAccountToken:
		if c.cfg.Tokens == nil {
			return hub.Object{}, false, nil
		}
		p, err := c.pods.Pods(k.Namespace).Get(k.Name)
		if err != nil {
			return absent(err)
		}
		content, rv, err := c.cfg.Tokens.Tokens(ctx, p)
		if err != nil {
			return hub.Object{}, false, fmt.Errorf("tokens of pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		return hub.Object{
			Version: queue.Version{UID: string(p.UID), ResourceVersion: rv},
			Message: func() (*wire.Message, error) { return c.message(k, rv, content), nil },
		}, true, nil
	default:
		return hub.Object{}, false, fmt.Errorf("edgecontroller: no source for %s objects", k.Type)
	}
	rv := meta.GetResourceVersion()
	return hub.Object{
		Version: queue.Version{UID: string(meta.GetUID()), ResourceVersion: rv},
		Message: func() (*wire.Message, error) {
			b, err := body()
			if err != nil {
				return nil, fmt.Errorf("encoding %s: %w", k, err)
			}
			return c.message(k, rv, b), nil
		},
	}, true, nil
}

func (c *Controller) message(k wire.Key, rv string, content []byte) *wire.Message {
	m := wire.NewMessage(wire.Route{
		Source:    ModuleName,
		Group:     wire.GroupResource,
		Operation: wire.OpUpdate,
		Resource:  k.String(),
	}, content)
	m.Header.ResourceVersion = rv
	return m
}

// stripManagedFields drops server-side-apply bookkeeping before objects enter the caches: it
// is often the largest part of an object, and neither the edge nor the graph reads it.
func stripManagedFields(obj any) (any, error) {
	if a, err := apimeta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

// coreTypeMeta is the apiVersion and kind of a core/v1 object: informer caches hold objects
// without them, and the edge needs them to decode what it stores.
func coreTypeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: "v1", Kind: kind}
}

// absent turns a lister's NotFound into "no such object" and keeps other errors.
func absent(err error) (hub.Object, bool, error) {
	if apierrors.IsNotFound(err) {
		return hub.Object{}, false, nil
	}
	return hub.Object{}, false, err
}

// Object returns the current JSON of key if it is in node's set (upstream.Objects): the
// answer to an edge query.
func (c *Controller) Object(node string, key wire.Key) (json.RawMessage, bool) {
	if !c.Synced() || !c.graph.Allows(node, key) {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), queryDeadline)
	defer cancel()
	o, ok, err := c.object(ctx, key)
	if err != nil || !ok {
		return nil, false
	}
	m, err := o.Message()
	if err != nil {
		return nil, false
	}
	return m.Content, true
}

// Pod returns a bound pod from the cache.
func (c *Controller) Pod(namespace, name string) (*corev1.Pod, bool) {
	p, err := c.pods.Pods(namespace).Get(name)
	return p, err == nil
}

// Node returns an edge Node from the cache.
func (c *Controller) Node(name string) (*corev1.Node, bool) {
	n, err := c.nodes.Get(name)
	return n, err == nil
}

// TokensRefreshed is the token source's callback: the pod's tokens were reissued.
func (c *Controller) TokensRefreshed(namespace, pod string) {
	if node, ok := c.graph.NodeOf(namespace, pod); ok {
		c.enqueue(node)
	}
}

func (c *Controller) enqueue(node string) {
	if node != "" {
		c.queue.Add(node)
	}
}

func (c *Controller) nodeChanged(obj any) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	c.graph.UpsertNode(n)
	c.enqueue(n.Name)
}

func (c *Controller) nodeDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	c.graph.DeleteNode(n.Name)
	c.enqueue(n.Name)
	if c.cfg.NodeGone != nil {
		c.cfg.NodeGone(n.Name)
	}
}

func (c *Controller) podChanged(obj any) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	before, known := c.graph.NodeOf(p.Namespace, p.Name)
	c.graph.UpsertPod(p)
	if known && before != p.Spec.NodeName {
		c.forgetTokens(p.Namespace, p.Name)
		c.enqueueIfEdge(before)
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		c.forgetTokens(p.Namespace, p.Name) // it starts no container again: stop refreshing
	}
	c.enqueueIfEdge(p.Spec.NodeName)
}

func (c *Controller) podDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	node, known := c.graph.NodeOf(p.Namespace, p.Name)
	c.graph.DeletePod(p.Namespace, p.Name)
	c.forgetTokens(p.Namespace, p.Name)
	if known {
		c.enqueueIfEdge(node)
	}
}

func (c *Controller) forgetTokens(namespace, pod string) {
	if c.cfg.Tokens != nil {
		c.cfg.Tokens.Forget(namespace, pod)
	}
}

// NodeChanged asks for a reconcile of node if it is an edge node: the device source's
// trigger.
func (c *Controller) NodeChanged(node string) { c.enqueueIfEdge(node) }

func (c *Controller) enqueueIfEdge(node string) {
	if c.graph.IsEdgeNode(node) {
		c.enqueue(node)
	}
}

// referencedChanged maps a ConfigMap or Secret event to the nodes that hold it.
func (c *Controller) referencedChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	var key wire.Key
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		key = wire.Key{Namespace: o.Namespace, Type: wire.TypeConfigMap, Name: o.Name}
	case *corev1.Secret:
		key = wire.Key{Namespace: o.Namespace, Type: wire.TypeSecret, Name: o.Name}
	default:
		return
	}
	for _, n := range c.graph.Holders(key) {
		c.enqueue(n)
	}
}

// QueueLen is the number of nodes waiting for a reconcile (for metrics).
func (c *Controller) QueueLen() int { return c.queue.Len() }

// Compile-time checks of the interfaces the hub uses.
var (
	_ hub.DesiredSource = (*Controller)(nil)
	_ hub.NodeLocker    = (*Controller)(nil)
)

// syncDeadline bounds how long a reconcile may wait on the token source;
// resyncBuildDeadline bounds it for a resync, which holds up the node's upstream messages.
const (
	syncDeadline        = 30 * time.Second
	resyncBuildDeadline = 5 * time.Second
	queryDeadline       = 5 * time.Second
)
