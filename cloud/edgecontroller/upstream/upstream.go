// Package upstream is what cloudcore does with what edge nodes send: node registration and
// status, leases, pod status and deletion, mirror pods, events, device status, MQTT uploads, and
// reads of the node's desired set (docs/protocol.md, "Upstream" and "Devices"). [Handler] implements [hub.Upstream].
//
// cloudcore writes to the API server with its own, broad, credentials, so the NodeRestriction
// admission plugin never sees what an edge asks for. Every message is therefore authorized as
// the sending node first ([authz.Authorizer]), and the writes themselves are shaped the way
// NodeRestriction would shape a kubelet's: labels a kubelet may not set are dropped or refused,
// pod status writes may not touch labels or resource claims, deletions carry the pod's uid.
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	kjson "sigs.k8s.io/json"

	"github.com/skerry-io/skerry/cloud/edgecontroller/authz"
	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/pkg/client/clientset/versioned"
	"github.com/skerry-io/skerry/pkg/wire"
)

// Objects is the node graph's cache, built elsewhere from informers.
type Objects interface {
	// Object returns the current JSON of an object in the node's desired set (configmap,
	// secret, serviceaccounttoken, pod, node), or ok=false.
	Object(node string, key wire.Key) (json.RawMessage, bool)
	// Pod returns the pod from the pod lister. The result is shared and must not be modified.
	Pod(namespace, name string) (*corev1.Pod, bool)
	// Node returns the node from the node lister. The result is shared and must not be modified.
	Node(name string) (*corev1.Node, bool)
}

// Clock is the time source; tests inject one whose After fires at once.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Defaults for zero Config fields.
const (
	// DefaultCallTimeout bounds one API call, so a hung connection turns into a retry.
	DefaultCallTimeout = 5 * time.Second
	// DefaultRetryBudget bounds the time spent retrying transient API errors in place before
	// the message is handed back to the edge's outbox.
	DefaultRetryBudget = 5 * time.Second
	// DefaultRetryBackoff is the first pause between attempts; it doubles after each one.
	DefaultRetryBackoff = 200 * time.Millisecond
	// DefaultRetryAttempts bounds the attempts of one API call.
	DefaultRetryAttempts = 4
	// DefaultLeaseDurationSeconds is the kubelet's, used when the edge sends none.
	DefaultLeaseDurationSeconds = 40
)

// maxContent caps the content accepted. The codec caps whole messages at 8 MiB; the largest
// real content, a node status with 50 images, is a few hundred KiB.
const maxContent = 2 << 20

// conflictAttempts bounds read-modify-write loops that lose to concurrent writers.
const conflictAttempts = 5

// EdgeLabel marks a Node as an edge node. cloudcore sets it at registration and refuses to
// write any Node that lacks it: a node of the same name that is not an edge node is not ours.
const EdgeLabel = "node-role.kubernetes.io/edge"

// Config configures a [Handler].
type Config struct {
	Client kubernetes.Interface // required
	// Devices writes DeviceStatus objects; nil refuses device status messages.
	Devices    versioned.Interface
	Authorizer *authz.Authorizer // required
	Objects    Objects           // required
	Logger     *slog.Logger      // nil discards
	// NodeLabels are extra labels cloudcore adds at registration (optional). Edges may not
	// change them afterwards.
	NodeLabels map[string]string
	Clock      Clock // nil means the real clock

	// CallTimeout, RetryBudget, RetryBackoff and RetryAttempts tune the in-place retry of
	// transient API errors (defaults above).
	CallTimeout   time.Duration
	RetryBudget   time.Duration
	RetryBackoff  time.Duration
	RetryAttempts int
}

// Handler handles upstream messages. It is safe for concurrent use.
type Handler struct {
	cfg    Config
	client kubernetes.Interface
	authz  *authz.Authorizer
	objs   Objects
	log    *slog.Logger
	clock  Clock

	leaseMu sync.Mutex
	leases  map[string]*leaseEntry // per node: the last Lease written

	uploadMu sync.Mutex
	uploads  map[string]uint64 // per node: MQTT uploads taken

	counts [numKinds]kindCounters
}

var _ hub.Upstream = (*Handler)(nil)

// New returns a Handler, or an error when a required field is missing or NodeLabels are not
// valid labels.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("upstream: Config.Client is required")
	case cfg.Authorizer == nil:
		return nil, errors.New("upstream: Config.Authorizer is required")
	case cfg.Objects == nil:
		return nil, errors.New("upstream: Config.Objects is required")
	}
	labels := make(map[string]string, len(cfg.NodeLabels))
	for k, v := range cfg.NodeLabels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("upstream: node label key %q: %v", k, errs)
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("upstream: node label %q value %q: %v", k, v, errs)
		}
		labels[k] = v
	}
	cfg.NodeLabels = labels
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.RetryBudget <= 0 {
		cfg.RetryBudget = DefaultRetryBudget
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.RetryAttempts <= 0 {
		cfg.RetryAttempts = DefaultRetryAttempts
	}
	return &Handler{
		cfg:     cfg,
		client:  cfg.Client,
		authz:   cfg.Authorizer,
		objs:    cfg.Objects,
		log:     cfg.Logger,
		clock:   cfg.Clock,
		leases:  make(map[string]*leaseEntry),
		uploads: make(map[string]uint64),
	}, nil
}

// Kind names a kind of upstream message, for [Handler.Stats].
type Kind string

// Message kinds. KindOther counts what no rule names (refused or not supported).
const (
	KindRegister     Kind = "register"
	KindNodeStatus   Kind = "nodestatus"
	KindNodePatch    Kind = "nodepatch"
	KindHeartbeat    Kind = "heartbeat"
	KindPodStatus    Kind = "podstatus"
	KindPodPatch     Kind = "podpatch"
	KindPodDelete    Kind = "poddelete"
	KindMirrorPod    Kind = "mirrorpod"
	KindEvent        Kind = "event"
	KindQuery        Kind = "query"
	KindDeviceStatus Kind = "devicestatus"
	KindUpload       Kind = "mqttupload"
	KindOther        Kind = "other"
)

const numKinds = 13

// allKinds is a function so that no package state is mutable.
func allKinds() [numKinds]Kind {
	return [numKinds]Kind{KindRegister, KindNodeStatus, KindNodePatch, KindHeartbeat, KindPodStatus,
		KindPodPatch, KindPodDelete, KindMirrorPod, KindEvent, KindQuery, KindDeviceStatus, KindUpload, KindOther}
}

// Counts are one kind's counters. Failed includes Transient (failures left for the edge to
// resend) and refusals by the authorizer.
type Counts struct {
	Handled, Failed, Transient uint64
}

type kindCounters struct {
	handled, failed, transient atomic.Uint64
}

// Stats returns the counters of every kind (all kinds are present).
func (h *Handler) Stats() map[Kind]Counts {
	m := make(map[Kind]Counts, numKinds)
	for i, k := range allKinds() {
		c := &h.counts[i]
		m[k] = Counts{Handled: c.handled.Load(), Failed: c.failed.Load(), Transient: c.transient.Load()}
	}
	return m
}

func (h *Handler) count(k Kind, err error) {
	for i, kk := range allKinds() {
		if kk != k {
			continue
		}
		c := &h.counts[i]
		switch {
		case err == nil:
			c.handled.Add(1)
		case errors.Is(err, hub.ErrTransient):
			c.failed.Add(1)
			c.transient.Add(1)
		default:
			c.failed.Add(1)
		}
	}
}

// Denied is the error returned when the authorizer refuses a message; its text is the
// decision's reason, which the hub sends to the edge.
type Denied struct{ Decision authz.Decision }

func (e *Denied) Error() string { return e.Decision.Reason }

// Errors callers (and tests) can match with errors.Is. None of them is transient.
var (
	ErrNotFound     = errors.New("not found")
	ErrUnsupported  = errors.New("not supported")
	ErrMalformed    = errors.New("malformed content")
	ErrRefused      = errors.New("refused")
	ErrPodRecreated = errors.New("the pod was deleted and re-created (uid mismatch)")
)

// kindOf classifies a message for counting and dispatch; resource-parse failures are
// KindOther (the authorizer refuses them).
func kindOf(op wire.Operation, key wire.Key) Kind {
	switch key.Type {
	case wire.TypeNode:
		switch op {
		case wire.OpInsert:
			return KindRegister
		case wire.OpQuery:
			return KindQuery
		}
	case wire.TypeNodeStatus:
		if op == wire.OpUpdate || op == wire.OpInsert {
			return KindNodeStatus
		}
	case wire.TypeNodePatch:
		if op == wire.OpPatch {
			return KindNodePatch
		}
	case wire.TypeLease:
		if op == wire.OpUpdate || op == wire.OpInsert {
			return KindHeartbeat
		}
	case wire.TypePodStatus:
		if op == wire.OpUpdate {
			return KindPodStatus
		}
	case wire.TypePodPatch:
		if op == wire.OpPatch {
			return KindPodPatch
		}
	case wire.TypePod:
		switch op {
		case wire.OpDelete:
			return KindPodDelete
		case wire.OpInsert:
			return KindMirrorPod
		case wire.OpQuery:
			return KindQuery
		}
	case wire.TypeConfigMap, wire.TypeSecret, wire.TypeServiceAccountToken, wire.TypeDevice, wire.TypeDeviceModel:
		if op == wire.OpQuery {
			return KindQuery
		}
	case wire.TypeDeviceStatus:
		if op == wire.OpUpdate {
			return KindDeviceStatus
		}
	case wire.TypeMQTTUpload:
		if op == wire.OpPublish {
			return KindUpload
		}
	case wire.TypeEvent:
		if op == wire.OpInsert {
			return KindEvent
		}
	}
	return KindOther
}

// Handle implements [hub.Upstream].
func (h *Handler) Handle(ctx context.Context, node string, msg *wire.Message) (reply json.RawMessage, err error) {
	op := msg.Route.Operation
	key, perr := wire.ParseResource(msg.Route.Resource)
	kind := KindOther
	if perr == nil {
		kind = kindOf(op, key)
	}
	defer func() {
		// A handler bug must cost one message, not the cloudcore process.
		if r := recover(); r != nil {
			h.log.Error("upstream handler panicked", "node", node, "kind", string(kind), "panic", fmt.Sprint(r))
			reply, err = nil, fmt.Errorf("internal error handling %s %s", op, clip(msg.Route.Resource))
		}
		h.count(kind, err)
	}()

	if d := h.authz.Authorize(node, msg); !d.Allowed {
		return nil, &Denied{Decision: d}
	}
	if perr != nil { // the authorizer refuses these; never act on an unparsed resource
		return nil, fmt.Errorf("%w: %w", ErrMalformed, perr)
	}
	if len(msg.Content) > maxContent {
		return nil, fmt.Errorf("%w: content of %d bytes exceeds the %d-byte limit", ErrMalformed, len(msg.Content), maxContent)
	}

	switch kind {
	case KindRegister:
		return h.register(ctx, node, msg.Content)
	case KindNodeStatus:
		return nil, h.nodeStatus(ctx, node, msg.Content)
	case KindNodePatch:
		return h.nodePatch(ctx, node, msg.Content)
	case KindHeartbeat:
		return nil, h.heartbeat(ctx, node, msg.Content)
	case KindPodStatus:
		return nil, h.podStatus(ctx, node, key, msg.Content)
	case KindPodPatch:
		return h.podPatch(ctx, node, key, msg.Content)
	case KindPodDelete:
		return nil, h.podDelete(ctx, node, key, msg.Content)
	case KindMirrorPod:
		return nil, h.mirrorPod(ctx, node, key, msg.Content)
	case KindEvent:
		return nil, h.event(ctx, node, key, msg.Content)
	case KindQuery:
		return h.query(node, key)
	case KindDeviceStatus:
		return nil, h.deviceStatus(ctx, node, key, msg.Content)
	case KindUpload:
		return nil, h.upload(node, msg.Content)
	}
	h.log.Warn("edge message not supported", "node", node, "operation", clip(string(op)), "resource", key.String())
	return nil, fmt.Errorf("%s %s: %w", clip(string(op)), key, ErrUnsupported)
}

// query answers from the graph's cache only: the authorizer checked the key against the
// node's graph, and the API server could return objects the graph has not caught up with.
func (h *Handler) query(node string, key wire.Key) (json.RawMessage, error) {
	obj, ok := h.objs.Object(node, key)
	if !ok {
		h.log.Debug("query: not in the node's set", "node", node, "resource", key.String())
		return nil, fmt.Errorf("%s %w", key, ErrNotFound)
	}
	h.log.Debug("query answered", "node", node, "resource", key.String())
	return obj, nil
}

// decode reads content into v case-sensitively (as the API server does) and refuses
// duplicate keys, so that what the authorizer read and what is written cannot differ.
// Unknown fields are tolerated: edges may be newer than cloudcore.
func decode(content json.RawMessage, what string, v any) error {
	t := bytes.TrimSpace(content)
	if len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%w: %s must be a JSON object", ErrMalformed, what)
	}
	strict, err := kjson.UnmarshalStrict(t, v, kjson.DisallowDuplicateFields)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrMalformed, what, err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("%w: %s: %w", ErrMalformed, what, strict[0])
	}
	return nil
}

// decodeMap reads a JSON object generically, with the same rules as decode.
func decodeMap(content json.RawMessage, what string) (map[string]any, error) {
	var m map[string]any
	if err := decode(content, what, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// clip keeps edge-chosen strings short in errors and logs.
func clip(s string) string {
	const max = 256
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// withKind returns obj as JSON with apiVersion and kind set, as downstream objects are:
// typed clients strip TypeMeta from what they return.
func withKind(obj any, setKind func()) (json.RawMessage, error) {
	setKind()
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode answer: %w", err)
	}
	return b, nil
}
