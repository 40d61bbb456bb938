// Package edged holds the contracts between Edged's parts: the pod runner
// (edge/edged/runner), volumes and environment (edge/edged/volumes), probes and lifecycle
// hooks (edge/edged/probe) and the kubelet-style API (edge/edged/server). Each part
// implements or consumes these interfaces; edge/app wires them together.
package edged

import (
	"context"
	"encoding/json"
	"errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI labels every container and sandbox Edged creates carries, the kubelet's names, so
// tools that know them (crictl, the kubelet API) find pods by them, and so Edged adopts what
// it finds after a restart.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
	// LabelNode names the node whose Edged made a sandbox or container. Edged lists, adopts
	// and cleans up only its own: several edge nodes may share one runtime (tests, and hosts
	// running edgecore beside a kubelet).
	LabelNode = "edge.skerry.io/node"
)

// Errors a part returns so the runner can report them as the kubelet does.
var (
	// ErrUnsupported: the pod uses something Edged does not implement. The message names the
	// field (e.g. "spec.volumes[2].persistentVolumeClaim"); the pod fails with it.
	ErrUnsupported = errors.New("not supported by this edge node")
	// ErrNotReady: something the pod needs is not there yet (a ConfigMap or Secret that is
	// not optional, a token not issued yet). The runner retries; the message says what.
	ErrNotReady = errors.New("not ready")
)

// Facts are what a pod's environment and downward API may read besides the pod itself.
type Facts struct {
	NodeName string
	HostIP   string
	PodIP    string
	PodIPs   []string
}

// Objects reads what the node holds: the objects the cloud sent for this node's pods.
type Objects interface {
	ConfigMap(ctx context.Context, namespace, name string) (*corev1.ConfigMap, bool, error)
	Secret(ctx context.Context, namespace, name string) (*corev1.Secret, bool, error)
	// PodTokens returns the pod's service-account tokens (docs/protocol.md, PodTokens).
	PodTokens(ctx context.Context, namespace, pod string) (*PodTokens, bool, error)
}

// PodTokens is the token object cloudcore sends per pod (docs/protocol.md).
type PodTokens struct {
	APIVersion         string          `json:"apiVersion"`
	Kind               string          `json:"kind"`
	Metadata           json.RawMessage `json:"metadata"`
	ServiceAccountName string          `json:"serviceAccountName"`
	Tokens             []Token         `json:"tokens"`
}

// Token is one issued token; a projection asks for it by (Audience, ExpirationSeconds).
type Token struct {
	Audience          string `json:"audience"`
	ExpirationSeconds int64  `json:"expirationSeconds"`
	Path              string `json:"path"`
	Token             string `json:"token"`
}

// Volumes prepares pods' volumes on the host.
type Volumes interface {
	// Setup creates every volume of the pod, or refreshes their content (ConfigMap, Secret,
	// downward API and token content is replaced atomically, as the kubelet does, so a
	// running container never sees half an update). It is idempotent and called on every
	// sync of the pod. Errors wrap ErrUnsupported (naming the field) or ErrNotReady.
	Setup(ctx context.Context, pod *corev1.Pod, facts Facts) error
	// Mounts returns the CRI mounts of one container (volumeMounts with subPath, readOnly).
	Mounts(pod *corev1.Pod, c *corev1.Container) ([]*runtimeapi.Mount, error)
	// Teardown removes everything Setup made for the pod (unmounting tmpfs).
	Teardown(ctx context.Context, podUID types.UID) error
}

// Env resolves a container's environment.
type Env interface {
	// Resolve returns env and envFrom in the kubelet's order and precedence. Errors wrap
	// ErrNotReady (a missing non-optional key or object) or ErrUnsupported.
	Resolve(ctx context.Context, pod *corev1.Pod, c *corev1.Container, facts Facts) ([]*runtimeapi.KeyValue, error)
}

// ProbeState is what the probes of one running container say.
type ProbeState struct {
	// Started: the startup probe succeeded, or there is none.
	Started bool
	// Ready: the readiness probe succeeds (false until it does), or there is none and the
	// container has started.
	Ready bool
	// Unhealthy: the liveness or startup probe failed failureThreshold times: the container
	// must be restarted (per the pod's restart policy). Message says why.
	Unhealthy bool
	Message   string
}

// Prober runs the probes of running containers.
type Prober interface {
	// Add starts probing a container that was just started (or adopted). Calling it again
	// for the same containerID does nothing.
	Add(pod *corev1.Pod, c *corev1.Container, containerID string, facts Facts)
	// Remove stops probing a container.
	Remove(containerID string)
	// State returns the container's current state; ok is false for an unknown container.
	State(containerID string) (state ProbeState, ok bool)
	// Changes delivers the uid of a pod whose probe state changed, so its runner syncs.
	Changes() <-chan types.UID
}

// Hooks runs lifecycle handlers (postStart, preStop).
type Hooks interface {
	// Run runs h for the container and returns when it finished, failed or ctx ended.
	Run(ctx context.Context, pod *corev1.Pod, c *corev1.Container, containerID string, h *corev1.LifecycleHandler, facts Facts) error
}

// StatusSink sends pod status to the cloud (through the outbox, coalesced per pod).
type StatusSink interface {
	// PodStatus reports the pod's full status; the sink sends it only if it changed.
	PodStatus(ctx context.Context, pod *corev1.Pod, status corev1.PodStatus) error
	// PodDeleted tells the cloud the pod's containers are gone, so its deletion completes.
	PodDeleted(ctx context.Context, pod *corev1.Pod) error
	// Event records an event about the pod (reason, message, type Normal or Warning).
	Event(ctx context.Context, pod *corev1.Pod, eventType, reason, message string)
}
