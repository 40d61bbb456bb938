package authz

import (
	"bytes"
	"errors"
	"fmt"

	kjson "sigs.k8s.io/json"

	"github.com/skerry-io/skerry/pkg/wire"
)

// MaxDeviceStatusContent caps a DeviceStatus message. A DeviceStatus object must fit into
// etcd's 1.5 MiB with its metadata; twins of a few hundred properties take a few tens of KiB.
const MaxDeviceStatusContent = 1 << 20

// Owner reference of a DeviceStatus, as docs/protocol.md fixes it.
const (
	DeviceAPIVersion = "devices.kubeedge.io/v1beta1"
	DeviceKind       = "Device"
)

// DeviceStatusIdentity is what a DeviceStatus message says about the object it is for.
type DeviceStatusIdentity struct {
	Namespace, Name string
	// OwnerUID is the uid of the Device as the edge has it: the controller owner reference's.
	OwnerUID string
}

// ParseDeviceStatusIdentity reads the metadata of a DeviceStatus message the way every later
// consumer does: case-sensitively and refusing duplicate keys, so the authorizer and the writer
// cannot read different objects. It requires exactly one owner reference, the controller
// reference to a Device of the same name with a uid.
func ParseDeviceStatusIdentity(content []byte) (DeviceStatusIdentity, error) {
	if len(content) > MaxDeviceStatusContent {
		return DeviceStatusIdentity{}, fmt.Errorf("device status content is larger than %d bytes", MaxDeviceStatusContent)
	}
	t := bytes.TrimSpace(content)
	if len(t) == 0 || t[0] != '{' {
		return DeviceStatusIdentity{}, errors.New("device status content must be a JSON object")
	}
	var in struct {
		Metadata struct {
			Namespace       string `json:"namespace"`
			Name            string `json:"name"`
			OwnerReferences []struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Name       string `json:"name"`
				UID        string `json:"uid"`
				Controller *bool  `json:"controller"`
			} `json:"ownerReferences"`
		} `json:"metadata"`
	}
	strict, err := kjson.UnmarshalStrict(t, &in, kjson.DisallowDuplicateFields)
	if err != nil {
		return DeviceStatusIdentity{}, fmt.Errorf("device status content: %w", err)
	}
	if len(strict) > 0 {
		return DeviceStatusIdentity{}, fmt.Errorf("device status content: %w", strict[0])
	}
	md := in.Metadata
	id := DeviceStatusIdentity{Namespace: md.Namespace, Name: md.Name}
	if len(md.OwnerReferences) != 1 {
		return id, fmt.Errorf("device status must have exactly one owner reference, its Device's (has %d)", len(md.OwnerReferences))
	}
	ref := md.OwnerReferences[0]
	switch {
	case ref.APIVersion != DeviceAPIVersion || ref.Kind != DeviceKind:
		return id, fmt.Errorf("device status owner must be a %s %s, not %s %s",
			DeviceAPIVersion, DeviceKind, clip(ref.APIVersion), clip(ref.Kind))
	case ref.Controller == nil || !*ref.Controller:
		return id, errors.New("device status owner reference must be the controller reference")
	case ref.Name != md.Name:
		return id, fmt.Errorf("device status %q is owned by Device %q: it must have its Device's name", clip(md.Name), clip(ref.Name))
	case ref.UID == "":
		return id, errors.New("device status owner reference has no uid")
	}
	id.OwnerUID = ref.UID
	return id, nil
}

// deviceStatusRule: a node writes the status only of a Device bound to it, and only of that
// very Device: a Device deleted and re-created under the same name (another uid) does not get
// the old one's twins.
func (a *Authorizer) deviceStatusRule(node string, op wire.Operation, key wire.Key, content []byte) Decision {
	if key.Namespace == "" || key.Name == "" {
		return deny(ClassMalformed, "node %q may not %s %s: a device status needs a namespace and a name", node, op, key)
	}
	bound, uid, known := a.scope.Device(key.Namespace, key.Name)
	switch {
	case !known:
		return deny(ClassForeignDevice, "node %q may not %s %s: device %s/%s is not bound to this node",
			node, op, key, key.Namespace, key.Name)
	case bound != node:
		return deny(ClassForeignDevice, "node %q may not %s %s: device %s/%s is bound to %q",
			node, op, key, key.Namespace, key.Name, bound)
	}
	id, err := ParseDeviceStatusIdentity(content)
	if err != nil {
		return deny(ClassMalformed, "node %q may not %s %s: %v", node, op, key, err)
	}
	if id.Namespace != key.Namespace || id.Name != key.Name {
		return deny(ClassMalformed, "node %q may not %s %s: the content names device status %q/%q",
			node, op, key, clip(id.Namespace), clip(id.Name))
	}
	if id.OwnerUID != uid {
		return deny(ClassForeignDevice, "node %q may not %s %s: it is for Device uid %q, the Device %s/%s is now uid %q (deleted and re-created)",
			node, op, key, clip(id.OwnerUID), key.Namespace, key.Name, uid)
	}
	return allow()
}

// uploadRule: any edge node may forward what its apps publish for the cloud (the message names
// no object of another node); the resource is exactly null/mqttupload.
func (a *Authorizer) uploadRule(node string, op wire.Operation, key wire.Key) Decision {
	if key.Namespace != "" || key.Name != "" {
		return deny(ClassMalformed, "node %q may not %s %s: uploads are published to %s/%s",
			node, op, key, wire.NullNamespace, wire.TypeMQTTUpload)
	}
	if !a.scope.Allows(node, NodeKey(node)) {
		return deny(ClassForeignNode, "node %q may not %s %s: it is not a registered edge node", node, op, key)
	}
	return allow()
}

// NodeKey is the key of a Node, always in its own node's set.
func NodeKey(name string) wire.Key { return wire.Key{Type: wire.TypeNode, Name: name} }
