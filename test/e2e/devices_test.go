//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/pkg/client/informers/externalversions"
	"github.com/skerry-io/skerry/test/e2e/framework"
)

var deviceResources = []string{"devices", "devicemodels", "devicestatuses"}

// installDeviceCRDs applies manifests/crds with kubectl, as a user would, and waits until the
// API server serves the resources.
func installDeviceCRDs(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := env.RunKubectl(ctx, "apply", "--server-side", "--force-conflicts", "-f", filepath.Join(env.Root, "manifests", "crds")); err != nil {
		t.Fatal(err)
	}
	for _, r := range deviceResources {
		if _, err := env.RunKubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/"+r+".devices.kubeedge.io"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeviceCRDsAreServed(t *testing.T) {
	installDeviceCRDs(t)
	var out string
	framework.Eventually(t, 30*time.Second, "kubectl api-resources to list the device resources", func(ctx context.Context) (bool, error) {
		var err error
		out, err = env.RunKubectl(ctx, "api-resources", "--api-group=devices.kubeedge.io", "-o", "name")
		return err == nil && strings.Count(out, "\n") >= len(deviceResources), err
	})
	got := strings.Fields(out)
	sort.Strings(got)
	want := []string{"devicemodels.devices.kubeedge.io", "devices.devices.kubeedge.io", "devicestatuses.devices.kubeedge.io"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("api-resources = %v, want %v", got, want)
	}
}

// TestKubeEdgeObjectsApplyUnchanged applies KubeEdge v1beta1 YAML with kubectl and checks that
// the API server kept every field: nothing pruned, nothing rewritten.
func TestKubeEdgeObjectsApplyUnchanged(t *testing.T) {
	installDeviceCRDs(t)
	ctx := context.Background()
	ns := createNamespace(t)

	files, err := filepath.Glob(filepath.Join(env.Root, "api", "devices", "v1beta1", "testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no KubeEdge example objects in testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in := readObject(t, f)
			in.SetNamespace(ns)
			path := filepath.Join(t.TempDir(), filepath.Base(f))
			writeObject(t, path, in)
			if _, err := env.RunKubectl(ctx, "apply", "--validate=strict", "-f", path); err != nil {
				t.Fatal(err)
			}
			gvr := schema.GroupVersionResource{Group: devicesv1beta1.SchemeGroupVersion.Group, Version: "v1beta1", Resource: resourceOf(t, in.GetKind())}
			client := env.Dynamic.Resource(gvr).Namespace(ns)
			if status, ok := in.Object["status"]; ok {
				// status is a subresource: kubectl apply leaves it alone, the status writer sets it.
				stored, err := client.Get(ctx, in.GetName(), metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				stored.Object["status"] = status
				if _, err := client.UpdateStatus(ctx, stored, metav1.UpdateOptions{}); err != nil {
					t.Fatalf("update status: %v", err)
				}
			}
			stored, err := client.Get(ctx, in.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for key, want := range in.Object {
				if key == "metadata" {
					continue
				}
				if diff := missingFrom(want, stored.Object[key], key); diff != "" {
					t.Errorf("the API server did not keep the object as applied: %s", diff)
				}
			}
		})
	}
}

func TestInvalidDeviceModelIsRejected(t *testing.T) {
	installDeviceCRDs(t)
	ns := createNamespace(t)
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := `apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata:
  name: bad-model
  namespace: ` + ns + `
spec:
  protocol: modbus
  properties:
  - name: temperature
    type: COMPLEX
    accessMode: ReadOnly
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := env.RunKubectl(context.Background(), "apply", "-f", path)
	if err == nil || !strings.Contains(err.Error(), "COMPLEX") {
		t.Fatalf("a property type outside the KubeEdge enum was accepted or the error does not name it: %v", err)
	}
}

// TestDeviceInformerSeesChanges drives the generated typed clientset, informer and lister.
func TestDeviceInformerSeesChanges(t *testing.T) {
	installDeviceCRDs(t)
	ns := createNamespace(t)
	ctx, cancel := context.WithCancel(context.Background())
	factory := externalversions.NewSharedInformerFactoryWithOptions(env.Devices, 0, externalversions.WithNamespace(ns))
	defer func() {
		cancel() // Shutdown waits for the informers, which stop when ctx is done.
		factory.Shutdown()
	}()
	lister := factory.Devices().V1beta1().Devices().Lister()
	informer := factory.Devices().V1beta1().Devices().Informer()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.Fatal("device informer did not sync")
	}

	dev := &devicesv1beta1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: "thermometer", Namespace: ns},
		Spec: devicesv1beta1.DeviceSpec{
			DeviceModelRef: &devicesv1beta1.DeviceModelReference{Name: "thermometer-model"},
			NodeName:       "edge-node",
		},
	}
	devices := env.Devices.DevicesV1beta1().Devices(ns)
	if _, err := devices.Create(ctx, dev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 10*time.Second, "the lister to see the new device", func(context.Context) (bool, error) {
		got, err := lister.Devices(ns).Get("thermometer")
		return err == nil && got.Spec.NodeName == "edge-node", err
	})
	if err := devices.Delete(ctx, "thermometer", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 10*time.Second, "the lister to forget the deleted device", func(context.Context) (bool, error) {
		_, err := lister.Devices(ns).Get("thermometer")
		return apierrors.IsNotFound(err), nil
	})
}

func createNamespace(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	if _, err := env.RunKubectl(ctx, "create", "namespace", name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := env.RunKubectl(ctx, "delete", "namespace", name, "--wait=false"); err != nil {
			t.Errorf("delete namespace: %v", err)
		}
	})
	return name
}

func resourceOf(t *testing.T, kind string) string {
	t.Helper()
	switch kind {
	case "Device":
		return "devices"
	case "DeviceModel":
		return "devicemodels"
	case "DeviceStatus":
		return "devicestatuses"
	}
	t.Fatalf("unexpected kind %q in testdata", kind)
	return ""
}

func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &obj.Object); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return obj
}

func writeObject(t *testing.T, path string, obj *unstructured.Unstructured) {
	t.Helper()
	b, err := yaml.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// missingFrom describes the first part of want that got does not hold; "" when got holds all of
// want (got may have more, e.g. defaults the server added).
func missingFrom(want, got any, path string) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: want an object, got %T", path, got)
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if d := missingFrom(w[k], g[k], path+"."+k); d != "" {
				return d
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return fmt.Sprintf("%s: want %d items, got %v", path, len(w), got)
		}
		for i := range w {
			if d := missingFrom(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
	default:
		// YAML and JSON numbers decode to different Go types; compare their printed values.
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return fmt.Sprintf("%s: want %v, got %v", path, want, got)
		}
	}
	return ""
}
