package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	kjson "sigs.k8s.io/json"
)

// The inventory is Skerry's resync handshake (not part of KubeEdge's protocol, which resends
// everything instead): on every connect the edge reports what it holds, and the cloud answers
// with only the difference from the node's desired set. It travels as an ordinary message:
//
//	route{source: "edgehub", destination: "cloudhub", group: "meta", operation: "inventory", resource: "inventory"}
//	content: {"items": [{"key": "default/pod/web-1", "uid": "…", "resourceVersion": "…"}, …]}
//
// The cloud acknowledges it like any other message once it has queued the difference.
const OpInventory Operation = "inventory"

// Names used by the inventory message, and its bound.
const (
	InventoryResource = "inventory"
	EdgeHubModule     = "edgehub"
	CloudHubModule    = "cloudhub"
	// MaxInventoryItems bounds one inventory: a node holding more objects than this is far
	// outside what an edge node is for, and the bound keeps the decoder's memory predictable.
	MaxInventoryItems = 200_000
)

// InventoryItem is one object the edge holds: its key, uid and resourceVersion (opaque).
type InventoryItem struct {
	Key             string `json:"key"`
	UID             string `json:"uid"`
	ResourceVersion string `json:"resourceVersion"`
}

// Inventory is the content of an inventory message.
type Inventory struct {
	Items []InventoryItem `json:"items"`
}

// NewInventoryMessage builds the message the edge sends on connect. Items are sorted by key so
// the message is deterministic.
func NewInventoryMessage(inv Inventory) (*Message, error) {
	items := slices.Clone(inv.Items)
	slices.SortFunc(items, func(a, b InventoryItem) int { return strings.Compare(a.Key, b.Key) })
	content, err := json.Marshal(Inventory{Items: items})
	if err != nil {
		return nil, err
	}
	return NewMessage(Route{
		Source:      EdgeHubModule,
		Destination: CloudHubModule,
		Group:       GroupMeta,
		Operation:   OpInventory,
		Resource:    InventoryResource,
	}, content), nil
}

// IsInventory reports whether m is an inventory message.
func IsInventory(m *Message) bool {
	return m.Route.Operation == OpInventory && m.Route.Resource == InventoryResource
}

// DecodeInventory decodes and checks an inventory message's content: strict fields, every key a
// valid edge resource key with a name, no key twice, at most MaxInventoryItems items.
func DecodeInventory(m *Message) (map[Key]InventoryItem, error) {
	if !IsInventory(m) {
		return nil, fmt.Errorf("%w: not an inventory message (operation %q, resource %q)", ErrInvalid, m.Route.Operation, m.Route.Resource)
	}
	// Count items cheaply before allocating for them.
	if n := bytes.Count(m.Content, []byte(`"key"`)); n > MaxInventoryItems {
		return nil, fmt.Errorf("%w: inventory of about %d items exceeds %d", ErrInvalid, n, MaxInventoryItems)
	}
	var inv Inventory
	strict, err := kjson.UnmarshalStrict(m.Content, &inv)
	if err != nil {
		return nil, fmt.Errorf("%w: inventory: %v", ErrInvalid, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%w: inventory: %v", ErrInvalid, strict[0])
	}
	if len(inv.Items) > MaxInventoryItems {
		return nil, fmt.Errorf("%w: inventory of %d items exceeds %d", ErrInvalid, len(inv.Items), MaxInventoryItems)
	}
	out := make(map[Key]InventoryItem, len(inv.Items))
	for i, it := range inv.Items {
		k, err := ParseResource(it.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: inventory item %d: %v", ErrInvalid, i, err)
		}
		if k.Name == "" {
			return nil, fmt.Errorf("%w: inventory item %d: key %q names no object", ErrInvalid, i, it.Key)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%w: inventory item %d: key %q listed twice", ErrInvalid, i, it.Key)
		}
		if len(it.UID) > MaxIDLength || len(it.ResourceVersion) > MaxIDLength {
			return nil, fmt.Errorf("%w: inventory item %d: uid or resourceVersion longer than %d", ErrInvalid, i, MaxIDLength)
		}
		out[k] = it
	}
	return out, nil
}
