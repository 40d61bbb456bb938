//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	dmiapi "github.com/skerry-io/skerry/api/dmi/v1beta1"
	"github.com/skerry-io/skerry/pkg/modbus"
	"github.com/skerry-io/skerry/test/e2e/framework"
)

var deviceCloud = cloudAddrs{hub: "127.0.0.1:28000", bootstrap: "127.0.0.1:28002", admission: "127.0.0.1:28005", admin: "127.0.0.1:28006"}

const (
	deviceNode   = "devices-a"
	deviceMQTT   = "127.0.0.1:21884"
	deviceReport = 1000 // reportCycle of the test device, ms
)

// TestDevicesEndToEnd is issue 6 end to end, on the real apiserver, cloudcore, edgecore,
// MQTT brokers and the Modbus mapper as a process talking Modbus TCP to a simulated device:
// KubeEdge-style DeviceModel and Device YAML applied with kubectl reach the edge and the
// mapper; a register change shows in DeviceStatus; a desired value in the Device writes the
// register; the MQTT twin API answers on the documented topics (mosquitto_pub/_sub, an
// independent MQTT client); membership lists the device; with cloudcore stopped the mapper
// keeps reporting and DeviceStatus catches up; garbage on MQTT and DMI harms nothing; the
// MQTT flows again with an external mosquitto.
func TestDevicesEndToEnd(t *testing.T) {
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub", "/usr/sbin/mosquitto"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (hack/install-deps.sh installs it): %v", tool, err)
		}
	}
	ctx := context.Background()
	dir := t.TempDir()
	installDeviceCRDs(t)
	cloud := startCloud(t, dir, deviceCloud)
	dmiSock := filepath.Join(dir, "dmi.sock")
	edgeCfg := fmt.Sprintf("edged: {enable: false}\nnode: {statusUpdateFrequency: 2s}\n"+
		"eventBus: {enable: true, mode: internal, internal: {address: %q}}\n"+
		"deviceTwin: {enable: true, defaultReportCycle: 500ms, dmi: {socket: %q}}\n", deviceMQTT, dmiSock)
	edge := newEdge(t, dir, deviceNode, deviceCloud, "127.0.0.1:20556", edgeCfg)
	t.Cleanup(func() {
		_ = env.Kube.CoreV1().Nodes().Delete(context.Background(), deviceNode, metav1.DeleteOptions{})
		_ = env.Kube.CoordinationV1().Leases("kube-node-lease").Delete(context.Background(), deviceNode, metav1.DeleteOptions{})
		_ = env.Kube.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), "autonomy.pods.skerry.io", metav1.DeleteOptions{})
	})
	waitNodeReady(t, deviceNode)

	// The simulated device: a Modbus TCP server with its own register bank.
	bank, err := modbus.NewBank(modbus.DefaultBankSizes)
	if err != nil {
		t.Fatal(err)
	}
	sim := modbus.NewServer(bank, modbus.ServerOptions{})
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = sim.Serve(simLn) }()
	t.Cleanup(func() { _ = sim.Close() })
	simPort := simLn.Addr().(*net.TCPAddr).Port
	setReg := func(addr int, v uint16) {
		t.Helper()
		if err := bank.SetRegisters(modbus.HoldingRegisters, addr, v); err != nil {
			t.Fatal(err)
		}
	}
	setReg(0, 215)

	// The Modbus mapper, as a process, registering over DMI.
	mapperProc := env.Start(t, "modbus-mapper", "--name", "modbus-e2e", "--socket", filepath.Join(dir, "modbus.sock"), "--dmi-socket", dmiSock)
	t.Cleanup(func() { mapperProc.Stop(t) })

	// The README's example applies as written.
	if out, err := env.RunKubectl(ctx, "apply", "--dry-run=server", "-f", filepath.Join(env.Root, "docs", "examples", "thermostat.yaml")); err != nil {
		t.Fatalf("docs/examples/thermostat.yaml: %v\n%s", err, out)
	}
	ns := createNamespace(t)
	writeFile(t, dir, "model.yaml", fmt.Sprintf(`apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: thermostat-model, namespace: %s}
spec:
  protocol: modbus
  properties:
  - {name: temperature, type: FLOAT, accessMode: ReadOnly, unit: "°C"}
  - {name: setpoint, type: INT, accessMode: ReadWrite, minimum: "5", maximum: "95"}
`, ns))
	writeFile(t, dir, "device.yaml", fmt.Sprintf(`apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermostat-1, namespace: %[1]s}
spec:
  deviceModelRef: {name: thermostat-model}
  nodeName: %[2]s
  protocol:
    protocolName: modbus
    configData: {ip: 127.0.0.1, port: %[3]d, slaveID: 1}
  properties:
  - name: temperature
    collectCycle: 200
    reportCycle: %[4]d
    reportToCloud: true
    visitors:
      protocolName: modbus
      configData: {register: HoldingRegister, offset: 0, limit: 1, scale: 0.1}
  - name: setpoint
    desired: {value: "20"}
    collectCycle: 200
    reportCycle: %[4]d
    reportToCloud: true
    visitors:
      protocolName: modbus
      configData: {register: HoldingRegister, offset: 1, limit: 1}
  stateReport: {reportToCloud: true, reportCycle: 1000}
`, ns, deviceNode, simPort, deviceReport))
	if out, err := env.RunKubectl(ctx, "apply", "-f", filepath.Join(dir, "model.yaml"), "-f", filepath.Join(dir, "device.yaml")); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}

	twin := func(ctx context.Context, prop string) (reported, observed, state string, err error) {
		ds, err := env.Devices.DevicesV1beta1().DeviceStatuses(ns).Get(ctx, "thermostat-1", metav1.GetOptions{})
		if err != nil {
			return "", "", "", err
		}
		for _, tw := range ds.Status.Twins {
			if tw.PropertyName == prop {
				if tw.Reported != nil {
					reported = tw.Reported.Value
				}
				if tw.ObservedDesired != nil {
					observed = tw.ObservedDesired.Value
				}
				return reported, observed, string(ds.Status.State), nil
			}
		}
		return "", "", string(ds.Status.State), fmt.Errorf("no twin %s in %+v", prop, ds.Status)
	}
	waitTwin := func(timeout time.Duration, what, prop string, ok func(reported, observed, state string) bool) {
		t.Helper()
		framework.Eventually(t, timeout, what, func(ctx context.Context) (bool, error) {
			r, o, s, err := twin(ctx, prop)
			if err != nil {
				return false, err
			}
			return ok(r, o, s), fmt.Errorf("reported %q observedDesired %q state %q", r, o, s)
		})
	}

	// The device reaches the mapper, which reads the register (scaled) and applies the desired
	// value; DeviceStatus shows both.
	waitTwin(90*time.Second, "first DeviceStatus with the register's value", "temperature", func(r, _, s string) bool { return asFloat(r) == 21.5 && s != "" })
	framework.Eventually(t, 30*time.Second, "desired setpoint 20 written to register 1", func(context.Context) (bool, error) {
		v := holding(t, bank, 1)
		return v == 20, fmt.Errorf("register 1 = %d", v)
	})
	waitTwin(30*time.Second, "observedDesired of setpoint", "setpoint", func(r, o, _ string) bool { return r == "20" && o == "20" })

	// A register change is in DeviceStatus within two report cycles (plus the trip up).
	setReg(0, 230)
	changed := time.Now()
	waitTwin(2*deviceReport*time.Millisecond+10*time.Second, "register change in DeviceStatus", "temperature", func(r, _, _ string) bool { return asFloat(r) == 23 })
	t.Logf("register change reached DeviceStatus in %s (reportCycle %d ms)", time.Since(changed).Round(time.Millisecond), deviceReport)

	// A new desired value in the Device writes the register.
	patch := `{"spec":{"properties":[{"name":"temperature","collectCycle":200,"reportCycle":1000,"reportToCloud":true,` +
		`"visitors":{"protocolName":"modbus","configData":{"register":"HoldingRegister","offset":0,"limit":1,"scale":0.1}}},` +
		`{"name":"setpoint","desired":{"value":"42"},"collectCycle":200,"reportCycle":1000,"reportToCloud":true,` +
		`"visitors":{"protocolName":"modbus","configData":{"register":"HoldingRegister","offset":1,"limit":1}}}]}}`
	if _, err := env.Devices.DevicesV1beta1().Devices(ns).Patch(ctx, "thermostat-1", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 30*time.Second, "desired 42 written to the register", func(context.Context) (bool, error) {
		v := holding(t, bank, 1)
		return v == 42, fmt.Errorf("register 1 = %d", v)
	})

	// The MQTT twin API, through an independent client.
	id := ns + "/thermostat-1"
	mqttFlows(t, deviceMQTT, id, ns, bank, 55)

	// Garbage on DMI: each call gets an error, and the edge carries on.
	dmiGarbage(t, dmiSock)

	// cloudcore stopped: the mapper keeps reporting to the edge; after the cloud is back,
	// DeviceStatus holds the latest value.
	cloud.Stop(t)
	setReg(0, 777)
	sub := startSub(t, deviceMQTT, "$hw/events/device/"+id+"/twin/get/result")
	framework.Eventually(t, 30*time.Second, "the edge twin has the new reading while the cloud is away", func(context.Context) (bool, error) {
		pub(t, deviceMQTT, "$hw/events/device/"+id+"/twin/get", `{"event_id":"offline-get","timestamp":1}`)
		m, ok := sub.next(3 * time.Second)
		return ok && strings.Contains(m.payload, `"77.7"`), fmt.Errorf("get result %q", m.payload)
	})
	if _, _, _, err := twin(ctx, "temperature"); err != nil {
		t.Fatal(err)
	}
	startCloud(t, dir, deviceCloud)
	waitTwin(60*time.Second, "DeviceStatus catches up after the cloud returns", "temperature", func(r, _, _ string) bool { return asFloat(r) == 77.7 })

	// The same MQTT flows with an external mosquitto instead of the embedded broker.
	edge.proc.Stop(t)
	port := freePort(t)
	startMosquitto(t, dir, port)
	ext := fmt.Sprintf("127.0.0.1:%d", port)
	extCfg := strings.Replace(edgeCfg, fmt.Sprintf("mode: internal, internal: {address: %q}", deviceMQTT), fmt.Sprintf("mode: external, external: {url: %q}", "tcp://"+ext), 1)
	rewriteEdgeConfig(t, edge, edgeCfg, extCfg)
	edge.start(t)
	mqttFlows(t, ext, id, ns, bank, 66)
}

// mqttFlows drives the twin topics of spec §5 with mosquitto_pub/_sub on the broker at addr.
func mqttFlows(t *testing.T, addr, id, ns string, bank *modbus.Bank, setpoint uint16) {
	t.Helper()
	base := "$hw/events/device/" + id
	sub := startSub(t, addr, base+"/twin/update/result", base+"/twin/update/delta", base+"/twin/update/document",
		base+"/twin/get/result", "$hw/events/node/"+deviceNode+"/membership/get/result", base+"/state/update/result")

	// twin/update with an expected value: result, delta and document; the mapper gets the new
	// desired value over DMI and writes it.
	want := fmt.Sprint(setpoint)
	pub(t, addr, base+"/twin/update", `{"event_id":"e2e-1","timestamp":1767225600000,"twin":{"setpoint":{"expected":{"value":"`+want+`"}}}}`)
	got := sub.collect(t, 20*time.Second, base+"/twin/update/result", base+"/twin/update/delta", base+"/twin/update/document")
	var result struct {
		EventID string `json:"event_id"`
		Code    int    `json:"code"`
		Twin    map[string]struct {
			Expected struct{ Value string } `json:"expected"`
		} `json:"twin"`
	}
	mustJSON(t, got[base+"/twin/update/result"], &result)
	if result.EventID != "e2e-1" || result.Code != 0 || result.Twin["setpoint"].Expected.Value != want {
		t.Errorf("update result %s", got[base+"/twin/update/result"])
	}
	var delta struct {
		Delta map[string]string `json:"delta"`
	}
	mustJSON(t, got[base+"/twin/update/delta"], &delta)
	if delta.Delta["setpoint"] != want {
		t.Errorf("delta %s", got[base+"/twin/update/delta"])
	}
	var doc struct {
		Twin map[string]struct {
			Last    json.RawMessage `json:"last"`
			Current struct {
				Expected struct{ Value string } `json:"expected"`
			} `json:"current"`
		} `json:"twin"`
	}
	mustJSON(t, got[base+"/twin/update/document"], &doc)
	if doc.Twin["setpoint"].Current.Expected.Value != want {
		t.Errorf("document %s", got[base+"/twin/update/document"])
	}
	framework.Eventually(t, 30*time.Second, "the MQTT expected value written to the register", func(context.Context) (bool, error) {
		v := holding(t, bank, 1)
		return v == setpoint, fmt.Errorf("register 1 = %d", v)
	})

	// twin/get and membership/get.
	pub(t, addr, base+"/twin/get", `{"event_id":"e2e-get","timestamp":1}`)
	got = sub.collect(t, 20*time.Second, base+"/twin/get/result")
	if !strings.Contains(got[base+"/twin/get/result"], `"e2e-get"`) || !strings.Contains(got[base+"/twin/get/result"], `"temperature"`) {
		t.Errorf("get result %s", got[base+"/twin/get/result"])
	}
	pub(t, addr, "$hw/events/node/"+deviceNode+"/membership/get", `{"event_id":"e2e-members","timestamp":1}`)
	got = sub.collect(t, 20*time.Second, "$hw/events/node/"+deviceNode+"/membership/get/result")
	if m := got["$hw/events/node/"+deviceNode+"/membership/get/result"]; !strings.Contains(m, `"thermostat-1"`) {
		t.Errorf("membership %s", m)
	}

	// Garbage on every topic the edge answers: errors where a result topic exists, and the
	// twin is unchanged afterwards.
	for _, g := range []struct{ topic, payload string }{
		{base + "/twin/update", "not json"},
		{base + "/twin/update", `{"twin":{"setpoint":{"expected":{"value":"not a number"}}}}`},
		{base + "/twin/update", `{"twin":{"nosuch":{"expected":{"value":"1"}}}}`},
		{base + "/twin/get", "\x00\xff"},
		{base + "/state/update", `{"state":42}`},
		{"$hw/events/node/" + deviceNode + "/membership/get", "{"},
		{"$hw/events/device/" + ns + "/nosuch/twin/update", `{"twin":{}}`},
	} {
		pub(t, addr, g.topic, g.payload)
	}
	got = sub.collect(t, 20*time.Second, base+"/twin/update/result")
	if !strings.Contains(got[base+"/twin/update/result"], `"code"`) {
		t.Errorf("garbage update gave %s, want an error code", got[base+"/twin/update/result"])
	}
	pub(t, addr, base+"/twin/get", `{"event_id":"after-garbage","timestamp":1}`)
	framework.Eventually(t, 20*time.Second, "twin unchanged after garbage", func(context.Context) (bool, error) {
		m, ok := sub.next(5 * time.Second)
		if !ok || m.topic != base+"/twin/get/result" || !strings.Contains(m.payload, "after-garbage") {
			return false, fmt.Errorf("%s %q", m.topic, m.payload)
		}
		return strings.Contains(m.payload, `"`+want+`"`), fmt.Errorf("get result %q", m.payload)
	})
}

// dmiGarbage sends malformed and unknown requests to the edge's DMI server; each must fail
// cleanly and a valid call must still work.
func dmiGarbage(t *testing.T, sock string) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := dmiapi.NewDeviceManagerServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bad := []func() error{
		func() error { _, err := c.MapperRegister(ctx, &dmiapi.MapperRegisterRequest{}); return err },
		func() error {
			_, err := c.MapperRegister(ctx, &dmiapi.MapperRegisterRequest{Mapper: &dmiapi.MapperInfo{Name: "x", Protocol: "modbus", Address: []byte("relative/path")}})
			return err
		},
		func() error { _, err := c.ReportDeviceStatus(ctx, &dmiapi.ReportDeviceStatusRequest{}); return err },
		func() error {
			_, err := c.ReportDeviceStatus(ctx, &dmiapi.ReportDeviceStatusRequest{DeviceName: "nosuch", DeviceNamespace: "default",
				ReportedDevice: &dmiapi.DeviceStatus{Twins: []*dmiapi.Twin{{PropertyName: "x", Reported: &dmiapi.TwinProperty{Value: "1"}}}}})
			return err
		},
		func() error {
			_, err := c.ReportDeviceStates(ctx, &dmiapi.ReportDeviceStatesRequest{DeviceName: "../../etc", DeviceNamespace: "NOT VALID", State: "ok"})
			return err
		},
	}
	for i, call := range bad {
		if err := call(); err == nil {
			t.Errorf("DMI garbage call %d succeeded", i)
		}
	}
}

func holding(t *testing.T, bank *modbus.Bank, addr int) uint16 {
	t.Helper()
	v, err := bank.Registers(modbus.HoldingRegisters, addr, 1)
	if err != nil {
		t.Fatal(err)
	}
	return v[0]
}

func asFloat(s string) float64 {
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil {
		return -1
	}
	return f
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v: %q", err, s)
	}
}

func pub(t *testing.T, addr, topic, payload string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	// The payload goes on stdin (-s): it may hold bytes no argument can (NUL).
	cmd := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", topic, "-s")
	cmd.Stdin = strings.NewReader(payload)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub %s: %v: %s", topic, err, out)
	}
}

type mqttMsg struct{ topic, payload string }

// sub is a mosquitto_sub process; its messages arrive on msgs.
type sub struct {
	msgs chan mqttMsg
}

// startSub runs mosquitto_sub on topics (plus a probe topic) and returns once the probe
// comes back, so the subscription is in place before the test publishes.
func startSub(t *testing.T, addr string, topics ...string) *sub {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	probe := fmt.Sprintf("e2e/probe/%d", time.Now().UnixNano())
	args := []string{"-h", host, "-p", port, "-v", "-q", "1", "-t", probe}
	for _, tp := range topics {
		args = append(args, "-t", tp)
	}
	cmd := exec.Command("mosquitto_sub", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); wg.Wait() })
	s := &sub{msgs: make(chan mqttMsg, 256)}
	wg.Go(func() { readSub(out, s.msgs) })
	framework.Eventually(t, 30*time.Second, "mosquitto_sub subscribed", func(context.Context) (bool, error) {
		pub(t, addr, probe, "ping")
		m, ok := s.next(time.Second)
		return ok && m.topic == probe, nil
	})
	return s
}

// readSub parses mosquitto_sub -v lines ("<topic> <payload>"); payloads here are one line.
func readSub(r io.Reader, msgs chan<- mqttMsg) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		topic, payload, _ := strings.Cut(sc.Text(), " ")
		msgs <- mqttMsg{topic, payload}
	}
	close(msgs)
}

func (s *sub) next(wait time.Duration) (mqttMsg, bool) {
	select {
	case m, ok := <-s.msgs:
		return m, ok
	case <-time.After(wait):
		return mqttMsg{}, false
	}
}

// collect waits for one message on each of topics (ignoring probes and others), returning
// the newest payload per topic.
func (s *sub) collect(t *testing.T, timeout time.Duration, topics ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	deadline := time.Now().Add(timeout)
	for len(got) < len(topics) {
		m, ok := s.next(time.Until(deadline))
		if !ok {
			t.Fatalf("waited %s for %v; got %v", timeout, topics, got)
		}
		for _, tp := range topics {
			if m.topic == tp {
				got[tp] = m.payload
			}
		}
	}
	return got
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startMosquitto runs Debian's mosquitto on a loopback port with anonymous access.
func startMosquitto(t *testing.T, dir string, port int) {
	t.Helper()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", port)
	if os.Geteuid() == 0 {
		conf += "user root\n" // it would drop to user mosquitto, who cannot read the test's files
	}
	path := writeFile(t, dir, "mosquitto.conf", conf)
	cmd := exec.Command("/usr/sbin/mosquitto", "-c", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	framework.Eventually(t, 20*time.Second, "mosquitto listening", func(context.Context) (bool, error) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil, err
	})
}

// rewriteEdgeConfig swaps the extra part of a stopped edge's config file.
func rewriteEdgeConfig(t *testing.T, e *syncEdge, from, to string) {
	t.Helper()
	b, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), from) {
		t.Fatalf("config %s does not hold %q", e.cfgPath, from)
	}
	if err := os.WriteFile(e.cfgPath, []byte(strings.Replace(string(b), from, to, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}
