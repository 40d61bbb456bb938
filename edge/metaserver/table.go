package metaserver

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// column is one Table column: its definition and how to compute a cell.
type column struct {
	def  metav1.TableColumnDefinition
	cell func(s *Server, it *item) any
}

func col(name, typ string, priority int32, desc string, cell func(s *Server, it *item) any) column {
	format := ""
	if name == "Name" {
		format = "name"
	}
	return column{def: metav1.TableColumnDefinition{Name: name, Type: typ, Format: format, Priority: priority, Description: desc}, cell: cell}
}

// columns returns the Table columns of a resource, following the apiserver's printers where
// they exist (priority 1 columns show with -o wide).
func columns(kind string) []column {
	nameCol := col("Name", "string", 0, "Name must be unique within a namespace.", func(_ *Server, it *item) any { return it.name() })
	ageCol := col("Age", "string", 0, "Time since the object was created.", func(s *Server, it *item) any { return s.age(it) })
	str := func(path string) func(*Server, *item) any {
		return func(_ *Server, it *item) any { return orNone(fieldString(lookupPath(it.obj, path))) }
	}
	count := func(paths ...string) func(*Server, *item) any {
		return func(_ *Server, it *item) any {
			n := 0
			for _, p := range paths {
				if m, ok := lookupPath(it.obj, p).(map[string]any); ok {
					n += len(m)
				}
			}
			return int64(n)
		}
	}
	switch kind {
	case "Pod":
		return []column{nameCol,
			col("Ready", "string", 0, "The number of ready containers.", func(_ *Server, it *item) any { return podRow(it).ready }),
			col("Status", "string", 0, "The aggregate status of the containers in this pod.", func(_ *Server, it *item) any { return podRow(it).status }),
			col("Restarts", "string", 0, "The number of times the containers have restarted.", func(_ *Server, it *item) any { return podRow(it).restarts }),
			ageCol,
			col("IP", "string", 1, "The IP address assigned to the pod.", str("status.podIP")),
			col("Node", "string", 1, "The node the pod is bound to.", str("spec.nodeName")),
		}
	case "ConfigMap":
		return []column{nameCol, col("Data", "integer", 0, "Number of data entries.", count("data", "binaryData")), ageCol}
	case "Secret":
		return []column{nameCol, col("Type", "string", 0, "The type of the secret.", str("type")),
			col("Data", "integer", 0, "Number of data entries.", count("data")), ageCol}
	case "Node":
		return []column{nameCol,
			col("Status", "string", 0, "The readiness of the node.", func(_ *Server, it *item) any { return nodeStatus(it) }),
			col("Roles", "string", 0, "The roles of the node.", func(_ *Server, it *item) any { return nodeRoles(it) }),
			ageCol,
			col("Version", "string", 0, "Kubelet version.", str("status.nodeInfo.kubeletVersion")),
		}
	case "Service":
		return []column{nameCol, col("Type", "string", 0, "The type of the service.", str("spec.type")),
			col("Cluster-IP", "string", 0, "The cluster IP of the service.", str("spec.clusterIP")),
			col("Port(s)", "string", 0, "The ports of the service.", func(_ *Server, it *item) any { return servicePorts(it) }),
			ageCol}
	case "Endpoints":
		return []column{nameCol, col("Endpoints", "string", 0, "The addresses of the endpoints.", func(_ *Server, it *item) any { return endpointsAddrs(it) }), ageCol}
	case "EndpointSlice":
		return []column{nameCol, col("AddressType", "string", 0, "The type of the addresses.", str("addressType")),
			col("Endpoints", "string", 0, "The addresses of the endpoints.", func(_ *Server, it *item) any { return sliceAddrs(it) }), ageCol}
	case "Lease":
		return []column{nameCol, col("Holder", "string", 0, "The holder of the lease.", str("spec.holderIdentity")), ageCol}
	case "Device":
		return []column{nameCol, col("Model", "string", 0, "The device model.", str("spec.deviceModelRef.name")), ageCol}
	}
	return []column{nameCol, ageCol}
}

// table renders items as a meta.k8s.io/v1 Table. Rows carry the object as the client asked
// (includeObject): none, its metadata (the default) or the whole object.
func (s *Server) table(rr readRequest, items []*item, rv, cont string) *metav1.Table {
	cols := columns(rr.res.kind)
	t := &metav1.Table{
		TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"},
		ListMeta: metav1.ListMeta{ResourceVersion: rv, Continue: cont},
		Rows:     make([]metav1.TableRow, 0, len(items)),
	}
	for _, c := range cols {
		t.ColumnDefinitions = append(t.ColumnDefinitions, c.def)
	}
	for _, it := range items {
		row := metav1.TableRow{Cells: make([]any, 0, len(cols))}
		for _, c := range cols {
			row.Cells = append(row.Cells, c.cell(s, it))
		}
		var obj any
		switch rr.includeObject {
		case "Object":
			obj = it.obj
		case "Metadata":
			obj = partial(it)
		}
		if obj != nil {
			if b, err := json.Marshal(obj); err == nil {
				row.Object = runtime.RawExtension{Raw: b}
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func (s *Server) age(it *item) string {
	ts, _ := it.meta()["creationTimestamp"].(string)
	t, err := time.Parse(time.RFC3339, ts)
	if err != nil {
		return "<unknown>"
	}
	return duration.HumanDuration(s.cfg.Now().Sub(t))
}

// as converts the item into a typed API object for printers that need its structure.
func as[T any](it *item) (*T, bool) {
	b, err := json.Marshal(it.obj)
	if err != nil {
		return nil, false
	}
	var v T
	if json.Unmarshal(b, &v) != nil {
		return nil, false
	}
	return &v, true
}

type podCells struct{ ready, status, restarts string }

// podRow follows kubectl's pod printer (simplified): the reason of the first failing init
// container, else of the last non-running container, else the phase.
func podRow(it *item) podCells {
	pod, ok := as[corev1.Pod](it)
	if !ok {
		return podCells{"<unknown>", "<unknown>", "<unknown>"}
	}
	reason := string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		reason = pod.Status.Reason
	}
	var restarts int32
	initializing := false
	for i, cs := range pod.Status.InitContainerStatuses {
		restarts += cs.RestartCount
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case cs.State.Terminated != nil:
			if cs.State.Terminated.Reason != "" {
				reason = "Init:" + cs.State.Terminated.Reason
			} else {
				reason = fmt.Sprintf("Init:ExitCode:%d", cs.State.Terminated.ExitCode)
			}
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
			reason = "Init:" + cs.State.Waiting.Reason
		default:
			reason = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		initializing = true
		break
	}
	ready := 0
	if !initializing {
		restarts = 0
		hasRunning := false
		for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
			cs := pod.Status.ContainerStatuses[i]
			restarts += cs.RestartCount
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				reason = cs.State.Waiting.Reason
			case cs.State.Terminated != nil && cs.State.Terminated.Reason != "":
				reason = cs.State.Terminated.Reason
			case cs.State.Terminated != nil:
				reason = fmt.Sprintf("ExitCode:%d", cs.State.Terminated.ExitCode)
			case cs.Ready && cs.State.Running != nil:
				hasRunning = true
				ready++
			}
		}
		if reason == "Completed" && hasRunning {
			reason = "Running"
		}
	}
	if pod.DeletionTimestamp != nil {
		reason = "Terminating"
		if pod.Status.Reason == "NodeLost" {
			reason = "Unknown"
		}
	}
	return podCells{
		ready:    fmt.Sprintf("%d/%d", ready, len(pod.Spec.Containers)),
		status:   reason,
		restarts: fmt.Sprint(restarts),
	}
}

func nodeStatus(it *item) string {
	n, ok := as[corev1.Node](it)
	if !ok {
		return "Unknown"
	}
	st := "Unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			switch c.Status {
			case corev1.ConditionTrue:
				st = "Ready"
			case corev1.ConditionFalse:
				st = "NotReady"
			}
		}
	}
	if n.Spec.Unschedulable {
		st += ",SchedulingDisabled"
	}
	return st
}

func nodeRoles(it *item) string {
	var roles []string
	for k := range it.labels {
		if r, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && r != "" {
			roles = append(roles, r)
		}
	}
	sort.Strings(roles)
	return orNone(strings.Join(roles, ","))
}

func servicePorts(it *item) string {
	svc, ok := as[corev1.Service](it)
	if !ok {
		return "<unknown>"
	}
	var ps []string
	for _, p := range svc.Spec.Ports {
		s := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		if p.NodePort != 0 {
			s = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		}
		ps = append(ps, s)
	}
	return orNone(strings.Join(ps, ","))
}

// maxAddrs is how many addresses an endpoints cell lists before "+ N more...".
const maxAddrs = 3

func joinAddrs(addrs []string) string {
	if len(addrs) > maxAddrs {
		return strings.Join(addrs[:maxAddrs], ",") + fmt.Sprintf(" + %d more...", len(addrs)-maxAddrs)
	}
	return orNone(strings.Join(addrs, ","))
}

func endpointsAddrs(it *item) string {
	subsets, _ := lookupPath(it.obj, "subsets").([]any)
	var addrs []string
	for _, ss := range subsets {
		m, _ := ss.(map[string]any)
		as, _ := m["addresses"].([]any)
		ports, _ := m["ports"].([]any)
		for _, a := range as {
			ip := fieldString(lookupPath(asMap(a), "ip"))
			if len(ports) == 0 {
				addrs = append(addrs, ip)
			}
			for _, p := range ports {
				addrs = append(addrs, ip+":"+fieldString(lookupPath(asMap(p), "port")))
			}
		}
	}
	return joinAddrs(addrs)
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func sliceAddrs(it *item) string {
	eps, _ := lookupPath(it.obj, "endpoints").([]any)
	var addrs []string
	for _, e := range eps {
		m, _ := e.(map[string]any)
		as, _ := m["addresses"].([]any)
		for _, a := range as {
			if s, ok := a.(string); ok {
				addrs = append(addrs, s)
			}
		}
	}
	return joinAddrs(addrs)
}
