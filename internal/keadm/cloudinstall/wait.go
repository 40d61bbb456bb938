package cloudinstall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skerry-io/skerry/cloud/ca"
	"github.com/skerry-io/skerry/internal/keadm/service"
	"github.com/skerry-io/skerry/internal/keadm/statefile"
)

// logTailLines is how much of cloudcore's log a failed process-mode init prints.
const logTailLines = 20

// waitDeployment waits until cloudcore's Deployment is Available and returns its ready pod,
// node and node address. When it is not in time, the error says why, from the pods' conditions,
// container states and events.
func (c *Clients) waitDeployment(ctx context.Context, timeout, poll time.Duration) (pod, node, hostIP string, err error) {
	err = pollUntil(ctx, timeout, poll, func(ctx context.Context) (bool, error) {
		u, err := c.Dynamic.Resource(gvrDeployment).Namespace(Namespace).Get(ctx, Name, metav1.GetOptions{})
		if err != nil {
			return false, nil // transient, or not there yet: the timeout message will tell
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
			return false, fmt.Errorf("decode Deployment %s/%s: %w", Namespace, Name, err)
		}
		if !deploymentAvailable(&d) {
			return false, nil
		}
		pods, err := c.pods(ctx)
		if err != nil {
			return false, nil
		}
		for _, p := range pods {
			if p.DeletionTimestamp == nil && podReady(&p) {
				pod, node, hostIP = p.Name, p.Spec.NodeName, p.Status.HostIP
				return true, nil
			}
		}
		return false, nil
	}, func() error {
		return fmt.Errorf("cloudcore's Deployment %s/%s is not Available after %s:\n%s", Namespace, Name, timeout, c.diagnose(ctx))
	})
	return pod, node, hostIP, err
}

func deploymentAvailable(d *appsv1.Deployment) bool {
	if d.Status.ObservedGeneration < d.Generation || d.Status.AvailableReplicas < 1 ||
		d.Status.UpdatedReplicas < 1 || d.Status.Replicas != d.Status.UpdatedReplicas {
		return false
	}
	for _, cond := range d.Status.Conditions {
		if cond.Type == appsv1.DeploymentAvailable {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// pods lists cloudcore's pods.
func (c *Clients) pods(ctx context.Context) ([]corev1.Pod, error) {
	l, err := c.Dynamic.Resource(gvrPod).Namespace(Namespace).List(ctx, metav1.ListOptions{LabelSelector: appLabel + "=" + Name, Limit: 50})
	if err != nil {
		return nil, err
	}
	out := make([]corev1.Pod, 0, len(l.Items))
	for _, it := range l.Items {
		var p corev1.Pod
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(it.Object, &p); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// diagnose explains why cloudcore's pods are not ready, one indented line per fact.
func (c *Clients) diagnose(parent context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), requestTimeout)
	defer cancel()
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, "  "+fmt.Sprintf(format, args...)) }
	pods, err := c.pods(ctx)
	if err != nil {
		add("listing its pods failed: %v", err)
	}
	if err == nil && len(pods) == 0 {
		add("it has no pods")
		if u, err := c.Dynamic.Resource(gvrDeployment).Namespace(Namespace).Get(ctx, Name, metav1.GetOptions{}); err == nil {
			var d appsv1.Deployment
			if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d) == nil {
				for _, cond := range d.Status.Conditions {
					if cond.Status != corev1.ConditionTrue {
						add("Deployment %s=%s: %s %s", cond.Type, cond.Status, cond.Reason, cond.Message)
					}
				}
			}
		}
	}
	var events []unstructured.Unstructured
	if l, err := c.Dynamic.Resource(gvrEvent).Namespace(Namespace).List(ctx, metav1.ListOptions{Limit: 500}); err == nil {
		events = l.Items
	}
	for _, p := range pods {
		add("pod %s: %s", p.Name, p.Status.Phase)
		for _, cond := range p.Status.Conditions {
			if cond.Status != corev1.ConditionTrue && (cond.Reason != "" || cond.Message != "") {
				add("  %s=%s: %s %s", cond.Type, cond.Status, cond.Reason, cond.Message)
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil {
				add("  container %s waiting: %s %s", cs.Name, w.Reason, w.Message)
			}
			if t := cs.LastTerminationState.Terminated; t != nil {
				add("  container %s last exited %d: %s %s (kubectl logs -n %s %s --previous)", cs.Name, t.ExitCode, t.Reason, t.Message, Namespace, p.Name)
			}
		}
		var evs []string
		for _, e := range events {
			name, _, _ := unstructured.NestedString(e.Object, "involvedObject", "name")
			typ, _, _ := unstructured.NestedString(e.Object, "type")
			if name != p.Name || typ == corev1.EventTypeNormal {
				continue
			}
			reason, _, _ := unstructured.NestedString(e.Object, "reason")
			msg, _, _ := unstructured.NestedString(e.Object, "message")
			evs = append(evs, fmt.Sprintf("  event %s: %s", reason, msg))
		}
		evs = slices.Compact(evs)
		if len(evs) > 5 {
			evs = evs[len(evs)-5:]
		}
		for _, e := range evs {
			add("%s", e)
		}
	}
	if n, err := c.cloudNodes(ctx); err == nil && n == 0 {
		add("the cluster has no node cloudcore may run on (every node is an edge node, or there is none)")
	}
	add("a cluster without worker nodes (such as the local cluster of make up) keeps it Pending: use --mode process there")
	return strings.Join(lines, "\n")
}

// cloudNodes counts the nodes that are not edge nodes.
func (c *Clients) cloudNodes(ctx context.Context) (int, error) {
	l, err := c.Dynamic.Resource(gvrNode).List(ctx, metav1.ListOptions{LabelSelector: "!" + EdgeNodeLabel})
	if err != nil {
		return 0, err
	}
	return len(l.Items), nil
}

// startProcess writes cloudcore.yaml and init's record, then starts cloudcore as a host service.
func (o *Options) startProcess(ctx context.Context, spec service.Spec, cfgYAML []byte) (service.Handle, []string, error) {
	old, err := readRecord(o.StateDir)
	if err != nil {
		return service.Handle{}, nil, err
	}
	rec := &record{Mode: ModeProcess, Binary: spec.Binary, ConfigFile: filepath.Join(o.ConfigDir, ConfigFileName)}
	if old != nil {
		rec.CreatedDirs = old.CreatedDirs
		if old.Binary != spec.Binary {
			// The service is found by its binary: stop the old one before forgetting it.
			oldSpec := spec
			oldSpec.Binary = old.Binary
			if err := o.Services.Remove(ctx, oldSpec); err != nil {
				return service.Handle{}, nil, fmt.Errorf("stopping the cloudcore started from %s: %w", old.Binary, err)
			}
		}
	}
	for _, d := range []string{o.StateDir, o.ConfigDir} {
		made, err := mkdirAllRecorded(d, 0o755)
		if err != nil {
			return service.Handle{}, nil, fmt.Errorf("create %s: %w", d, err)
		}
		for _, m := range made {
			if !slices.Contains(rec.CreatedDirs, m) {
				rec.CreatedDirs = append(rec.CreatedDirs, m)
			}
		}
	}
	// The record goes first, so a reset after a failed start still finds everything.
	if err := writeRecord(o.StateDir, rec); err != nil {
		return service.Handle{}, nil, fmt.Errorf("write init's record: %w", err)
	}
	if err := statefile.WriteAtomic(rec.ConfigFile, cfgYAML, 0o600); err != nil {
		return service.Handle{}, nil, fmt.Errorf("write %s: %w", rec.ConfigFile, err)
	}
	notes := []string{"wrote " + rec.ConfigFile}
	h, err := o.Services.Start(ctx, spec)
	if err != nil {
		return h, notes, fmt.Errorf("start cloudcore: %w", err)
	}
	return h, append(notes, "started "+h.String()), nil
}

// waitProcess waits until cloudcore answers readyURL with 200 and its CA Secret exists. It
// fails at once when cloudcore exits, printing the end of its log.
func (o *Options) waitProcess(ctx context.Context, c *Clients, spec service.Spec, h service.Handle, readyURL string) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	var last string
	err := pollUntil(ctx, o.Timeout, o.PollInterval, func(ctx context.Context) (bool, error) {
		up, err := o.Services.Running(spec)
		if err != nil {
			return false, err
		}
		if !up {
			return false, errors.New("cloudcore exited")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, readyURL, nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Sprintf("%s answers %d %s", readyURL, resp.StatusCode, strings.TrimSpace(string(body)))
			return false, nil
		}
		_, err = c.Dynamic.Resource(gvrSecret).Namespace(Namespace).Get(ctx, ca.CASecretName, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				last = fmt.Sprintf("the CA Secret %s/%s does not exist yet", Namespace, ca.CASecretName)
			} else {
				last = err.Error()
			}
			return false, nil
		}
		return true, nil
	}, func() error {
		return fmt.Errorf("not ready after %s (last: %s)", o.Timeout, last)
	})
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w\n%s", err, o.logHint(spec, h))
}

// logHint is the end of cloudcore's log and where the whole of it is.
func (o *Options) logHint(spec service.Spec, h service.Handle) string {
	where := "log: " + h.LogPath
	if h.Kind == service.KindSystemd || h.LogPath == "" {
		where = "log: journalctl -u " + spec.Name
	}
	tail, err := o.Services.LogTail(spec, logTailLines)
	if err != nil {
		return fmt.Sprintf("cloudcore's log could not be read (%v); %s", err, where)
	}
	return fmt.Sprintf("last %d lines of cloudcore's log (%s):\n%s", logTailLines, where, strings.TrimRight(tail, "\n"))
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}
