package graph

import (
	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/pkg/wire"
)

// deviceRecord is what the graph remembers of a Device bound to a node.
type deviceRecord struct {
	node string
	uid  string
	// model is the name of its DeviceModel in the same namespace, "" when it names none.
	model string
}

// DeviceKey and DeviceModelKey are the keys of a Device and a DeviceModel in a node's set.
func DeviceKey(namespace, name string) wire.Key {
	return wire.Key{Namespace: namespace, Type: wire.TypeDevice, Name: name}
}

// DeviceModelKey: see [DeviceKey].
func DeviceModelKey(namespace, name string) wire.Key {
	return wire.Key{Namespace: namespace, Type: wire.TypeDeviceModel, Name: name}
}

// UpsertDevice records a Device's addition or update. A Device bound to no node is forgotten;
// one moved to another node leaves the old node's set, and its model is released there unless
// another device of that node still uses it. Like a pod's ConfigMaps, the model is in the set
// whether or not it exists yet.
func (g *Graph) UpsertDevice(d *devicesv1beta1.Device) {
	id := podID{d.Namespace, d.Name}
	if d.Spec.NodeName == "" {
		g.DeleteDevice(id.namespace, id.name)
		return
	}
	rec := &deviceRecord{node: d.Spec.NodeName, uid: string(d.UID)}
	if ref := d.Spec.DeviceModelRef; ref != nil {
		rec.model = ref.Name
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if old := g.devices[id]; old != nil {
		if *old == *rec {
			return // most updates change properties, not where the device lives
		}
		g.unlinkDevice(id, old)
	}
	g.devices[id] = rec
	byNode := g.devicesByNode[rec.node]
	if byNode == nil {
		byNode = make(map[podID]struct{})
		g.devicesByNode[rec.node] = byNode
	}
	byNode[id] = struct{}{}
	if set := g.sets[rec.node]; set != nil {
		addDevice(set, id, rec)
	}
}

// DeleteDevice forgets a Device; its model leaves the node's set unless another device there
// still references it.
func (g *Graph) DeleteDevice(namespace, name string) {
	id := podID{namespace, name}
	g.mu.Lock()
	defer g.mu.Unlock()
	if old := g.devices[id]; old != nil {
		g.unlinkDevice(id, old)
	}
}

// unlinkDevice removes a known device from every index. The caller holds g.mu.
func (g *Graph) unlinkDevice(id podID, rec *deviceRecord) {
	delete(g.devices, id)
	if byNode := g.devicesByNode[rec.node]; byNode != nil {
		delete(byNode, id)
		if len(byNode) == 0 {
			delete(g.devicesByNode, rec.node)
		}
	}
	if set := g.sets[rec.node]; set != nil {
		release(set, DeviceKey(id.namespace, id.name))
		if rec.model != "" {
			release(set, DeviceModelKey(id.namespace, rec.model))
		}
	}
}

func addDevice(set map[wire.Key]int32, id podID, rec *deviceRecord) {
	set[DeviceKey(id.namespace, id.name)]++
	if rec.model != "" {
		set[DeviceModelKey(id.namespace, rec.model)]++
	}
}

// Device returns the node a known Device is bound to (edge node or not) and its uid.
func (g *Graph) Device(namespace, name string) (node, uid string, ok bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if rec := g.devices[podID{namespace, name}]; rec != nil {
		return rec.node, rec.uid, true
	}
	return "", "", false
}

// DeviceCounts returns the number of Devices bound to each known edge node (nodes without
// devices included, with 0).
func (g *Graph) DeviceCounts() map[string]int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	m := make(map[string]int, len(g.sets))
	for n := range g.sets {
		m[n] = len(g.devicesByNode[n])
	}
	return m
}
