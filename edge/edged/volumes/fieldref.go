package volumes

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/skerry-io/skerry/edge/edged"
)

// fieldValue resolves a fieldRef as the kubelet does for env and the downward API.
func fieldValue(pod *corev1.Pod, fieldPath string, facts edged.Facts) (string, error) {
	if k, ok := subscript(fieldPath, "metadata.labels"); ok {
		return pod.Labels[k], nil
	}
	if k, ok := subscript(fieldPath, "metadata.annotations"); ok {
		return pod.Annotations[k], nil
	}
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		if pod.Spec.NodeName != "" {
			return pod.Spec.NodeName, nil
		}
		return facts.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return facts.HostIP, nil
	case "status.hostIPs":
		if facts.HostIP == "" {
			return "", nil
		}
		return facts.HostIP, nil
	case "status.podIP":
		if facts.PodIP != "" {
			return facts.PodIP, nil
		}
		if len(facts.PodIPs) > 0 {
			return facts.PodIPs[0], nil
		}
		return "", nil
	case "status.podIPs":
		if len(facts.PodIPs) > 0 {
			return strings.Join(facts.PodIPs, ","), nil
		}
		return facts.PodIP, nil
	}
	return "", fmt.Errorf("fieldRef %q: %w", fieldPath, edged.ErrUnsupported)
}

// subscript parses "<prefix>['key']".
func subscript(fieldPath, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(fieldPath, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

// formatMap is the kubelet's downward API format: key="value" lines, sorted by key, values
// quoted as Go does.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// resourceValue is the kubelet's ExtractResourceValueByContainerAndNodeAllocatable: a limit
// the container does not set is the node's allocatable; the value is divided by the divisor
// (default 1) and rounded up.
func (m *Manager) resourceValue(fs *corev1.ResourceFieldSelector, c *corev1.Container) (string, error) {
	divisor := fs.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	kind, name, ok := strings.Cut(fs.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef %q: %w", fs.Resource, edged.ErrUnsupported)
	}
	rn := corev1.ResourceName(name)
	switch rn {
	case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
	default:
		if !strings.HasPrefix(name, corev1.ResourceHugePagesPrefix) {
			return "", fmt.Errorf("resourceFieldRef %q: %w", fs.Resource, edged.ErrUnsupported)
		}
	}
	var q resource.Quantity
	if kind == "limits" {
		v, set := c.Resources.Limits[rn]
		if !set && !strings.HasPrefix(name, corev1.ResourceHugePagesPrefix) {
			v = m.allocatable()[rn]
		}
		q = v
	} else {
		q = c.Resources.Requests[rn]
	}
	if rn == corev1.ResourceCPU {
		if divisor.MilliValue() == 0 {
			return "", fmt.Errorf("resourceFieldRef %q: divisor %s too small", fs.Resource, divisor.String())
		}
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	if divisor.Value() == 0 {
		return "", fmt.Errorf("resourceFieldRef %q: divisor %s too small", fs.Resource, divisor.String())
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// allocatable is Config.Allocatable completed from the host.
func (m *Manager) allocatable() corev1.ResourceList {
	m.allocOnce.Do(func() {
		a := corev1.ResourceList{}
		for k, v := range m.cfgAlloc {
			a[k] = v
		}
		if _, ok := a[corev1.ResourceCPU]; !ok {
			a[corev1.ResourceCPU] = *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI)
		}
		if _, ok := a[corev1.ResourceMemory]; !ok {
			if mem, err := memTotal(); err == nil {
				a[corev1.ResourceMemory] = *resource.NewQuantity(mem, resource.BinarySI)
			} else {
				m.log.Warn("no node allocatable memory", "err", err)
			}
		}
		if _, ok := a[corev1.ResourceEphemeralStorage]; !ok {
			// Root may not exist yet: its nearest existing parent is on the same file system
			// or on the one it will be created on.
			var st syscall.Statfs_t
			dir := m.root
			err := syscall.Statfs(dir, &st)
			for errors.Is(err, syscall.ENOENT) && dir != filepath.Dir(dir) {
				dir = filepath.Dir(dir)
				err = syscall.Statfs(dir, &st)
			}
			if err == nil {
				a[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(st.Blocks)*int64(st.Bsize), resource.BinarySI)
			} else {
				m.log.Warn("no node allocatable ephemeral-storage", "err", err)
			}
		}
		m.alloc = a
	})
	return m.alloc
}

func memTotal() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}
