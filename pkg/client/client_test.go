// Package client_test checks the generated clientset, listers and informers against the device
// API types: REST paths, the status subresource, and free-form fields through the real codecs.
package client_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	"github.com/skerry-io/skerry/pkg/client/clientset/versioned"
	"github.com/skerry-io/skerry/pkg/client/clientset/versioned/fake"
	"github.com/skerry-io/skerry/pkg/client/informers/externalversions"
)

func newDevice(t *testing.T) *devicesv1beta1.Device {
	t.Helper()
	cfg, err := devicesv1beta1.NewFreeForm(map[string]any{"ip": "10.0.0.7", "port": 502, "big": uint64(1) << 62})
	if err != nil {
		t.Fatal(err)
	}
	return &devicesv1beta1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: "pump-1", Namespace: "plant"},
		Spec: devicesv1beta1.DeviceSpec{
			DeviceModelRef: &devicesv1beta1.DeviceModelReference{Name: "pump"},
			NodeName:       "edge-1",
			Protocol:       &devicesv1beta1.ProtocolConfig{ProtocolName: "modbus", ConfigData: cfg},
		},
	}
}

// TestTypedClientAgainstHTTP runs the real REST client against a stub API server and checks the
// URLs it uses and that free-form data crosses the wire unchanged.
func TestTypedClientAgainstHTTP(t *testing.T) {
	dev := newDevice(t)
	body, err := json.Marshal(dev)
	if err != nil {
		t.Fatal(err)
	}
	type request struct{ method, path, body string }
	requests := make(chan request, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		requests <- request{r.Method, r.URL.Path, string(b)}
		w.Header().Set("Content-Type", "application/json")
		switch r.Method {
		case http.MethodGet:
			_, _ = w.Write(body)
		default:
			_, _ = w.Write(b) // echo, as an update would
		}
	}))
	defer srv.Close()

	cs, err := versioned.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got, err := cs.DevicesV1beta1().Devices("plant").Get(ctx, "pump-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := <-requests; r.method != http.MethodGet || r.path != "/apis/devices.kubeedge.io/v1beta1/namespaces/plant/devices/pump-1" {
		t.Errorf("GET went to %s %s", r.method, r.path)
	}
	if want := string(dev.Spec.Protocol.ConfigData.JSON()); string(got.Spec.Protocol.ConfigData.JSON()) != want {
		t.Errorf("configData = %s, want %s", got.Spec.Protocol.ConfigData.JSON(), want)
	}

	ds := &devicesv1beta1.DeviceStatus{
		ObjectMeta: metav1.ObjectMeta{Name: "pump-1", Namespace: "plant"},
		Status: devicesv1beta1.DeviceStatusStatus{
			State: devicesv1beta1.DeviceStateOnline,
			Twins: []devicesv1beta1.Twin{{PropertyName: "pressure", Reported: &devicesv1beta1.TwinProperty{Value: "3.2"}}},
		},
	}
	if _, err := cs.DevicesV1beta1().DeviceStatuses("plant").UpdateStatus(ctx, ds, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := <-requests
	if r.method != http.MethodPut || r.path != "/apis/devices.kubeedge.io/v1beta1/namespaces/plant/devicestatuses/pump-1/status" {
		t.Errorf("UpdateStatus went to %s %s", r.method, r.path)
	}
	var sent map[string]any
	if err := json.Unmarshal([]byte(r.body), &sent); err != nil || sent["kind"] != "DeviceStatus" || sent["apiVersion"] != "devices.kubeedge.io/v1beta1" {
		t.Errorf("UpdateStatus body = %s (%v)", r.body, err)
	}
}

// TestFakeClientsetAndInformers checks the generated fake clientset, informer and lister work
// together on the device types.
func TestFakeClientsetAndInformers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cs := fake.NewSimpleClientset(newDevice(t))
	factory := externalversions.NewSharedInformerFactory(cs, 0)
	devices := factory.Devices().V1beta1().Devices()
	statuses := factory.Devices().V1beta1().DeviceStatuses()
	models := factory.Devices().V1beta1().DeviceModels()
	_, _, _ = devices.Informer(), statuses.Informer(), models.Informer()
	factory.Start(ctx.Done())
	defer func() {
		cancel()           // stop the informers,
		factory.Shutdown() // and wait until they have.
	}()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}

	got, err := devices.Lister().Devices("plant").Get("pump-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.NodeName != "edge-1" || got.Spec.Protocol.ConfigData == nil {
		t.Errorf("lister returned %+v", got.Spec)
	}

	model := &devicesv1beta1.DeviceModel{
		ObjectMeta: metav1.ObjectMeta{Name: "pump", Namespace: "plant"},
		Spec:       devicesv1beta1.DeviceModelSpec{Protocol: "modbus"},
	}
	if _, err := cs.DevicesV1beta1().DeviceModels("plant").Create(ctx, model, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		if m, err := models.Lister().DeviceModels("plant").Get("pump"); err == nil {
			if m.Spec.Protocol != "modbus" {
				t.Errorf("model = %+v", m.Spec)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("created DeviceModel never reached the lister")
		case <-time.After(10 * time.Millisecond):
		}
	}
}
