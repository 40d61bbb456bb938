// Package devicecontroller is DeviceController: it watches Devices and DeviceModels and feeds
// them into EdgeController's node graph, so devices travel like every other object of a node's
// set (the same per-node reconcile, resync, query scope and authorization). A Device is in node
// N's set when its spec.nodeName is N; its DeviceModel is there while one of N's devices
// references it (docs/protocol.md, "Devices").
//
// A field selector cannot select custom resources by spec.nodeName, so the informers watch all
// namespaces and the graph indexes devices by node.
//
// The device CRDs are optional: while the API server does not serve devices.kubeedge.io/v1beta1,
// every node's device set is empty (and complete), and the controller looks for the API again
// every [Config.ProbeInterval]; once it is served the informers start.
package devicecontroller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/cloud/edgecontroller/graph"
	"github.com/skerry-io/skerry/pkg/client/clientset/versioned"
	"github.com/skerry-io/skerry/pkg/client/informers/externalversions"
	deviceslisters "github.com/skerry-io/skerry/pkg/client/listers/devices/v1beta1"
	"github.com/skerry-io/skerry/pkg/wire"
)

// DefaultProbeInterval is how often the device API is looked for while it is not served.
const DefaultProbeInterval = 10 * time.Second

// Graph is the node graph as the device informers feed it (*graph.Graph).
type Graph interface {
	UpsertDevice(d *devicesv1beta1.Device)
	DeleteDevice(namespace, name string)
	Device(namespace, name string) (node, uid string, ok bool)
	Holders(key wire.Key) []string
}

// Config configures a [Controller].
type Config struct {
	Client versioned.Interface // required
	Graph  Graph               // required
	// Changed is called with every node whose device set (or an object in it) may have
	// changed: EdgeController's reconcile trigger. Required.
	Changed func(node string)
	// ProbeInterval is how often the device API is looked for while it is not served
	// (default [DefaultProbeInterval]).
	ProbeInterval time.Duration
	Logger        *slog.Logger // nil discards
}

// Controller is DeviceController. Create it with [New], start it with [Controller.Run].
type Controller struct {
	cfg     Config
	log     *slog.Logger
	factory externalversions.SharedInformerFactory
	devices deviceslisters.DeviceLister
	models  deviceslisters.DeviceModelLister

	handlers []cache.ResourceEventHandlerRegistration

	synced     chan struct{}
	syncedOnce sync.Once
}

// New builds the informers; nothing runs until [Controller.Run].
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Graph == nil || cfg.Changed == nil {
		return nil, errors.New("devicecontroller: Client, Graph and Changed are required")
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Controller{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "devicecontroller"),
		synced: make(chan struct{}),
		factory: externalversions.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
			externalversions.WithTransform(stripManagedFields)),
	}
	devInf := c.factory.Devices().V1beta1().Devices()
	modelInf := c.factory.Devices().V1beta1().DeviceModels()
	c.devices, c.models = devInf.Lister(), modelInf.Lister()

	reg, err := devInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.deviceChanged(obj) },
		UpdateFunc: func(_, obj any) { c.deviceChanged(obj) },
		DeleteFunc: c.deviceDeleted,
	})
	if err != nil {
		return nil, err
	}
	c.handlers = append(c.handlers, reg)
	reg, err = modelInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.modelChanged,
		UpdateFunc: func(_, obj any) { c.modelChanged(obj) },
		DeleteFunc: c.modelChanged,
	})
	if err != nil {
		return nil, err
	}
	c.handlers = append(c.handlers, reg)
	return c, nil
}

// Synced is closed once the graph holds every Device: the informers' first lists were handled,
// or the device API is not served (no devices at all). EdgeController answers no resync before.
func (c *Controller) Synced() <-chan struct{} { return c.synced }

func (c *Controller) markSynced() { c.syncedOnce.Do(func() { close(c.synced) }) }

// Run waits for the device API, runs the informers and blocks until ctx is done and they
// have stopped. It returns an error only when the informers cannot sync.
func (c *Controller) Run(ctx context.Context) error {
	if !c.waitServed(ctx) {
		return nil
	}
	c.factory.Start(ctx.Done())
	defer c.factory.Shutdown() // waits for the informers' goroutines
	for typ, ok := range c.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("devicecontroller: informer for %v did not sync", typ)
		}
	}
	synced := make([]cache.InformerSynced, len(c.handlers))
	for i, h := range c.handlers {
		synced[i] = h.HasSynced
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}
	c.markSynced()
	c.log.Info("device informers synced")
	<-ctx.Done()
	return nil
}

// waitServed returns true once the device API is served, false when ctx is done first. An
// API that is definitely absent counts as synced (no devices); an unanswered probe does not,
// since devices may exist.
func (c *Controller) waitServed(ctx context.Context) bool {
	gv := devicesv1beta1.SchemeGroupVersion.String()
	logged := false
	for {
		served, err := c.served(gv)
		switch {
		case err != nil:
			c.log.Warn("cannot tell whether the device API is served, will retry", "groupVersion", gv, "err", err)
		case served:
			return true
		default:
			c.markSynced()
			if !logged {
				c.log.Info("device API not served: no devices are synced until its CRDs are installed", "groupVersion", gv)
				logged = true
			}
		}
		t := time.NewTimer(c.cfg.ProbeInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// served reports whether gv serves both resources the controller watches.
func (c *Controller) served(gv string) (bool, error) {
	list, err := c.cfg.Client.Discovery().ServerResourcesForGroupVersion(gv)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var devices, models bool
	for _, r := range list.APIResources {
		switch r.Name {
		case "devices":
			devices = true
		case "devicemodels":
			models = true
		}
	}
	return devices && models, nil
}

// Object returns the Device or DeviceModel key names, from the cache, with apiVersion and
// kind set (informer caches hold objects without them, and the edge needs them to decode what
// it stores). The result shares its fields with the cache and must not be modified. ok is
// false when the object does not exist (a model not created yet, say).
func (c *Controller) Object(key wire.Key) (obj metav1.Object, ok bool, err error) {
	tm := metav1.TypeMeta{APIVersion: devicesv1beta1.SchemeGroupVersion.String()}
	switch key.Type {
	case wire.TypeDevice:
		d, err := c.devices.Devices(key.Namespace).Get(key.Name)
		if err != nil {
			return absent(err)
		}
		cp := *d
		tm.Kind = "Device"
		cp.TypeMeta = tm
		return &cp, true, nil
	case wire.TypeDeviceModel:
		m, err := c.models.DeviceModels(key.Namespace).Get(key.Name)
		if err != nil {
			return absent(err)
		}
		cp := *m
		tm.Kind = "DeviceModel"
		cp.TypeMeta = tm
		return &cp, true, nil
	}
	return nil, false, fmt.Errorf("devicecontroller: no source for %s objects", key.Type)
}

// Device returns a Device from the cache. The result is shared and must not be modified.
func (c *Controller) Device(namespace, name string) (*devicesv1beta1.Device, bool) {
	d, err := c.devices.Devices(namespace).Get(name)
	return d, err == nil
}

func absent(err error) (metav1.Object, bool, error) {
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	return nil, false, err
}

func (c *Controller) changed(node string) {
	if node != "" {
		c.cfg.Changed(node)
	}
}

func (c *Controller) deviceChanged(obj any) {
	d, ok := obj.(*devicesv1beta1.Device)
	if !ok {
		return
	}
	before, _, known := c.cfg.Graph.Device(d.Namespace, d.Name)
	c.cfg.Graph.UpsertDevice(d)
	if known && before != d.Spec.NodeName {
		c.log.Debug("device moved", "namespace", d.Namespace, "device", d.Name, "from", before, "to", d.Spec.NodeName)
		c.changed(before)
	}
	c.changed(d.Spec.NodeName)
}

func (c *Controller) deviceDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	d, ok := obj.(*devicesv1beta1.Device)
	if !ok {
		return
	}
	node, _, known := c.cfg.Graph.Device(d.Namespace, d.Name)
	c.cfg.Graph.DeleteDevice(d.Namespace, d.Name)
	if known {
		c.changed(node)
	}
}

// modelChanged maps a DeviceModel event to the nodes that hold it; a model created after its
// devices is already in their nodes' sets (by reference), so this sends it.
func (c *Controller) modelChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	m, ok := obj.(*devicesv1beta1.DeviceModel)
	if !ok {
		return
	}
	for _, n := range c.cfg.Graph.Holders(graph.DeviceModelKey(m.Namespace, m.Name)) {
		c.changed(n)
	}
}

// stripManagedFields drops server-side-apply bookkeeping before objects enter the caches, as
// EdgeController does for pods: neither the edge nor the graph reads it.
func stripManagedFields(obj any) (any, error) {
	if a, err := apimeta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
