package cloudinstall

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/skerry-io/skerry/cloud/config"
	"github.com/skerry-io/skerry/manifests"
	"github.com/skerry-io/skerry/pkg/configfile"
)

// Names of what keadm installs.
const (
	// Namespace is cloudcore's namespace; the RBAC manifest names it, so it is not configurable.
	Namespace = "kubeedge"
	// Name is the name of cloudcore's ServiceAccount, ConfigMap, Deployment, Service and service unit.
	Name = "cloudcore"
	// ConfigFileName is cloudcore's configuration file, in the ConfigMap and in --config-dir.
	ConfigFileName = "cloudcore.yaml"
	// FieldManager owns the fields keadm applies (server-side apply).
	FieldManager = "keadm"
	// ManagedByLabel marks every object keadm creates; reset deletes only objects carrying it.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "keadm"
	// EdgeNodeLabel marks edge nodes; cloudcore must not run on one.
	EdgeNodeLabel = "node-role.kubernetes.io/edge"

	appLabel        = "app.kubernetes.io/name"
	configHashKey   = "skerry.io/config-hash"
	podConfigDir    = "/etc/kubeedge/config"
	configVolume    = "config"
	maxManifestSize = 4 << 20
)

// manifestSet is everything init applies, in apply order.
type manifestSet struct {
	Namespace *unstructured.Unstructured
	CRDs      []*unstructured.Unstructured
	RBAC      []*unstructured.Unstructured
	// Workload is cluster mode's ConfigMap, Deployment and Service; empty in process mode.
	Workload []*unstructured.Unstructured
	// Config is cloudcore.yaml.
	Config []byte
}

func (m *manifestSet) all() []*unstructured.Unstructured {
	out := []*unstructured.Unstructured{m.Namespace}
	out = append(out, m.CRDs...)
	out = append(out, m.RBAC...)
	return append(out, m.Workload...)
}

// buildManifests turns the embedded manifests and cfg into the objects init applies. image is
// cluster mode's cloudcore image; process mode (image "") has no workload objects.
func buildManifests(cfg *config.CloudCore, mode Mode, image string) (*manifestSet, error) {
	cfgYAML, err := configfile.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("cloudcore.yaml: %w", err)
	}
	m := &manifestSet{Config: cfgYAML}
	m.Namespace = obj("v1", "Namespace", "", Namespace)

	files, err := manifests.CRDs()
	if err != nil {
		return nil, fmt.Errorf("embedded CRDs: %w", err)
	}
	for _, f := range files {
		objs, err := decodeManifests(f.Data)
		if err != nil {
			return nil, fmt.Errorf("embedded %s: %w", f.Name, err)
		}
		m.CRDs = append(m.CRDs, objs...)
	}
	rbac, err := decodeManifests(manifests.RBAC)
	if err != nil {
		return nil, fmt.Errorf("embedded rbac/cloudcore.yaml: %w", err)
	}
	for _, o := range rbac {
		// The namespace is applied on its own, first, and kept when it is not keadm's.
		if o.GetKind() == "Namespace" {
			continue
		}
		m.RBAC = append(m.RBAC, o)
	}
	if mode == ModeCluster {
		w, err := workload(cfg, cfgYAML, image)
		if err != nil {
			return nil, err
		}
		m.Workload = w
	}
	for _, o := range m.all() {
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[ManagedByLabel] = ManagedBy
		o.SetLabels(labels)
	}
	return m, nil
}

// decodeManifests splits a multi-document YAML stream into objects, skipping empty documents.
func decodeManifests(data []byte) ([]*unstructured.Unstructured, error) {
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("manifest of %d bytes, over the %d byte limit", len(data), maxManifestSize)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("document %d: want apiVersion, kind and metadata.name", i)
		}
		out = append(out, u)
	}
}

func obj(apiVersion, kind, namespace, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

// workload is cluster mode's ConfigMap, Deployment and Service.
func workload(cfg *config.CloudCore, cfgYAML []byte, image string) ([]*unstructured.Unstructured, error) {
	ports, err := containerPorts(cfg)
	if err != nil {
		return nil, err
	}
	adminHost, adminPort, err := probeTarget(cfg.Admin.Address)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(cfgYAML)
	labels := map[string]string{appLabel: Name}
	meta := metav1.ObjectMeta{Name: Name, Namespace: Namespace, Labels: map[string]string{appLabel: Name}}

	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: meta,
		Data:       map[string]string{ConfigFileName: string(cfgYAML)},
	}

	probe := func(path string) corev1.ProbeHandler {
		// cloudcore's admin endpoint listens on loopback by default; with hostNetwork the kubelet
		// shares that loopback, so it probes 127.0.0.1 rather than the pod (node) address.
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Host: adminHost, Path: path, Port: intstr.FromInt32(adminPort)}}
	}
	nonRoot := int64(65532)
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta,
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			// With hostNetwork a second pod on the same node cannot bind the ports, so the old
			// pod goes first.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels: labels,
					// A changed config restarts cloudcore; an unchanged one (init run twice) does not.
					Annotations: map[string]string{configHashKey: hex.EncodeToString(sum[:8])},
				},
				Spec: corev1.PodSpec{
					ServiceAccountName: Name,
					// Edge nodes dial the node's address, as with KubeEdge's cloudcore, and the API
					// server calls the admission webhook there (admission.url defaults to the first
					// advertise address, else the node's own address).
					HostNetwork: true,
					DNSPolicy:   corev1.DNSClusterFirstWithHostNet,
					Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
							NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
								Key: EdgeNodeLabel, Operator: corev1.NodeSelectorOpDoesNotExist,
							}}}},
						},
					}},
					Tolerations: []corev1.Toleration{
						{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
						{Key: "node-role.kubernetes.io/master", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
					},
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr(true), RunAsUser: &nonRoot, RunAsGroup: &nonRoot, FSGroup: &nonRoot,
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            Name,
						Image:           image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            []string{"--config", podConfigDir + "/" + ConfigFileName},
						Ports:           ports,
						ReadinessProbe:  &corev1.Probe{ProbeHandler: probe("/readyz"), PeriodSeconds: 5, FailureThreshold: 3},
						LivenessProbe:   &corev1.Probe{ProbeHandler: probe("/healthz"), InitialDelaySeconds: 15, PeriodSeconds: 20, FailureThreshold: 3},
						VolumeMounts:    []corev1.VolumeMount{{Name: configVolume, MountPath: podConfigDir, ReadOnly: true}},
						// Requests only, about what cloudcore with a few hundred nodes uses; a limit
						// would have to grow with the node count.
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
						}},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr(false),
							ReadOnlyRootFilesystem:   ptr(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					Volumes: []corev1.Volume{{
						Name: configVolume,
						VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: Name},
						}},
					}},
				},
			},
		},
	}

	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta,
		Spec:       corev1.ServiceSpec{Selector: labels},
	}
	for _, p := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name: p.Name, Protocol: p.Protocol, Port: p.ContainerPort, TargetPort: intstr.FromInt32(p.ContainerPort),
		})
	}

	var out []*unstructured.Unstructured
	for _, o := range []runtime.Object{cm, dep, svc} {
		u, err := toUnstructured(o)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// containerPorts are the ports cloudcore serves to the network, from cfg: the hub's enabled
// transports, bootstrap and the admission webhook. The admin port stays on the node.
func containerPorts(cfg *config.CloudCore) ([]corev1.ContainerPort, error) {
	var ports []corev1.ContainerPort
	add := func(key, name, addr string, proto corev1.Protocol) error {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s: port %q, want 1-65535 for a Service", key, p)
		}
		ports = append(ports, corev1.ContainerPort{Name: name, ContainerPort: int32(n), Protocol: proto})
		return nil
	}
	var errs []error
	if cfg.Hub.WebSocket.Enable {
		errs = append(errs, add("hub.websocket.address", "websocket", cfg.Hub.WebSocket.Address, corev1.ProtocolTCP))
	}
	if cfg.Hub.QUIC.Enable {
		errs = append(errs, add("hub.quic.address", "quic", cfg.Hub.QUIC.Address, corev1.ProtocolUDP))
	}
	errs = append(errs, add("bootstrap.address", "bootstrap", cfg.Bootstrap.Address, corev1.ProtocolTCP))
	if cfg.Admission.Enable {
		errs = append(errs, add("admission.address", "admission", cfg.Admission.Address, corev1.ProtocolTCP))
	}
	return ports, errors.Join(errs...)
}

// probeTarget is where the kubelet (or keadm, in process mode) reaches the admin endpoint: its
// host, with an unspecified address meaning loopback.
func probeTarget(addr string) (string, int32, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("admin.address: %w", err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("admin.address: port %q, want 1-65535 so it can be probed", p)
	}
	if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
		h = "127.0.0.1"
	}
	return h, int32(n), nil
}

// toUnstructured converts a typed object, dropping the empty status and creation timestamps the
// conversion adds, so the applied configuration holds only fields keadm means to own.
func toUnstructured(o runtime.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	unstructured.RemoveNestedField(m, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(m, "spec", "template", "metadata", "creationTimestamp")
	return &unstructured.Unstructured{Object: m}, nil
}

// writeYAMLStream writes objs as one multi-document YAML stream, as kubectl apply -f - reads it.
func writeYAMLStream(w io.Writer, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
			return err
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
