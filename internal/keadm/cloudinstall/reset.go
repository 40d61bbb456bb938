package cloudinstall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/skerry-io/skerry/cloud/admission"
	"github.com/skerry-io/skerry/cloud/config"
	"github.com/skerry-io/skerry/internal/keadm/service"
)

// cloudcoreManagedBy is the managed-by label value cloudcore puts on the webhook configuration
// it registers (cloud/admission).
const cloudcoreManagedBy = "skerry-cloudcore"

// deleteOrder is the order reset deletes kinds in: the workload first, the namespace last.
var deleteOrder = []string{
	"Deployment", "Service", "ConfigMap", "RoleBinding", "ClusterRoleBinding", "Role", "ClusterRole",
	"ServiceAccount", "MutatingWebhookConfiguration", "CustomResourceDefinition", "Namespace",
}

// Reset removes what Init created: the process-mode cloudcore and the files init recorded,
// and the cluster objects carrying keadm's label (a namespace or CRD without it stays), plus
// the webhook configuration cloudcore registered. Edge nodes' Nodes and Leases stay. Running
// it again succeeds. It waits until the namespace is gone, so init can follow at once.
func Reset(ctx context.Context, o Options) error {
	o.defaults()
	for _, d := range []struct{ flag, path string }{{"--config-dir", o.ConfigDir}, {"--state-dir", o.StateDir}} {
		if !filepath.IsAbs(d.path) {
			return fmt.Errorf("%s %q: want an absolute path", d.flag, d.path)
		}
	}
	total := 5
	if o.HostOnly {
		total = 1
	}
	st := &steps{w: o.Stderr, total: total}
	// The host first: it needs no cluster, so a cluster that is gone does not leave cloudcore running.
	if err := st.run("removing cloudcore from this host", func() ([]string, error) { return o.resetHost(ctx) }); err != nil {
		return err
	}
	if o.HostOnly {
		fmt.Fprintln(o.Stderr, "cluster objects left as they are (--host-only)")
		return nil
	}
	c := o.Clients
	err := st.run("checking the cluster", func() ([]string, error) {
		if c == nil {
			var err error
			if c, err = NewClients(o.Kubeconfig); err != nil {
				return nil, err
			}
		}
		return checkCluster(c)
	})
	if err != nil {
		return err
	}
	nsDeleted := false
	err = st.run("deleting the cluster objects keadm created", func() ([]string, error) {
		objs, err := resetObjects()
		if err != nil {
			return nil, err
		}
		var notes []string
		for _, obj := range objs {
			want := ManagedBy
			if obj.GetKind() == "MutatingWebhookConfiguration" {
				want = cloudcoreManagedBy
			}
			note, err := c.deleteManaged(ctx, obj, want)
			if err != nil {
				return notes, err
			}
			if note == "" {
				continue
			}
			if obj.GetKind() == "Namespace" && note == describe(obj)+": deleted" {
				nsDeleted = true
				note += " (with it the join tokens and cloudcore's CA: nodes joined before must join again)"
			}
			if obj.GetKind() == "CustomResourceDefinition" && note == describe(obj)+": deleted" {
				note += " (with every object of that kind)"
			}
			notes = append(notes, note)
		}
		if len(notes) == 0 {
			notes = append(notes, "nothing left to delete")
		}
		return notes, nil
	})
	if err != nil {
		return err
	}
	err = st.run("waiting for namespace "+Namespace+" to be gone", func() ([]string, error) {
		if !nsDeleted {
			if err := c.waitNamespaceNotTerminating(ctx, o.Timeout, o.PollInterval); err != nil {
				return nil, err
			}
			return []string{"it was not deleted"}, nil
		}
		return nil, pollUntil(ctx, o.Timeout, o.PollInterval, func(ctx context.Context) (bool, error) {
			_, err := c.Dynamic.Resource(gvrNamespace).Get(ctx, Namespace, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		}, func() error {
			return fmt.Errorf("namespace %s still exists after %s: see kubectl get ns %s -o yaml (its conditions say what blocks it)", Namespace, o.Timeout, Namespace)
		})
	})
	if err != nil {
		return err
	}
	return st.run("counting edge nodes", func() ([]string, error) {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		l, err := c.Dynamic.Resource(gvrNode).List(rctx, metav1.ListOptions{LabelSelector: EdgeNodeLabel})
		if err != nil {
			return nil, fmt.Errorf("list edge nodes: %w", err)
		}
		if len(l.Items) == 0 {
			return []string{"no edge nodes"}, nil
		}
		return []string{fmt.Sprintf("%d edge node(s) still exist; init did not create them, so they stay: run keadm reset edge on each and kubectl delete node", len(l.Items))}, nil
	})
}

// resetObjects is every object init may have created, and the webhook configuration cloudcore
// registers, in deletion order.
func resetObjects() ([]*unstructured.Unstructured, error) {
	m, err := buildManifests(config.Default(), ModeCluster, "unused")
	if err != nil {
		return nil, err
	}
	objs := append(m.all(), obj("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "", admission.WebhookName))
	rank := func(o *unstructured.Unstructured) int {
		if i := slices.Index(deleteOrder, o.GetKind()); i >= 0 {
			return i
		}
		return -1 // unknown kinds go first, before anything they might depend on
	}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return rank(a) - rank(b) })
	return objs, nil
}

// resetHost stops and removes the process-mode cloudcore and the files and directories init
// recorded.
func (o *Options) resetHost(ctx context.Context) ([]string, error) {
	rec, err := readRecord(o.StateDir)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		notes := []string{"no process-mode cloudcore recorded in " + o.StateDir}
		if p := filepath.Join(o.ConfigDir, ConfigFileName); exists(p) {
			notes = append(notes, p+" exists but init did not write it: kept")
		}
		return notes, nil
	}
	spec := service.Spec{Name: Name, Binary: rec.Binary, StateDir: o.StateDir}
	if err := o.Services.Remove(ctx, spec); err != nil {
		return nil, fmt.Errorf("stop and remove cloudcore: %w", err)
	}
	notes := []string{"stopped and removed the cloudcore service"}
	if err := os.Remove(rec.ConfigFile); err == nil {
		notes = append(notes, "removed "+rec.ConfigFile)
	} else if !errors.Is(err, os.ErrNotExist) {
		return notes, err
	}
	if err := os.Remove(filepath.Join(o.StateDir, recordFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return notes, err
	}
	for _, d := range slices.Backward(rec.CreatedDirs) {
		err := os.Remove(d)
		switch {
		case err == nil:
			notes = append(notes, "removed "+d)
		case errors.Is(err, os.ErrNotExist):
		case errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST):
			notes = append(notes, d+" is not empty (something else put files there): kept")
		default:
			return notes, err
		}
	}
	return notes, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
