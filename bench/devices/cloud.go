package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	pb "github.com/skerry-io/skerry/api/dmi/v1beta1"
	"github.com/skerry-io/skerry/pkg/client/clientset/versioned"
)

type cloudOptions struct {
	kubeconfig, cloudcore, edgecore, keadm string
	node, namespace, workDir               string
	wsPort, bootstrapPort, adminPort       int
	mqtt, metaServer                       string
	reports, devices                       int
	latencyCycle, interval                 time.Duration
	deviceCycle, reportFor, settle         time.Duration
	timeout                                time.Duration
	keep                                   bool
}

// cloudResult is what the cloud benchmark measured.
type cloudResult struct {
	LatencyReportCycleMS int64   `json:"latencyReportCycleMs"`
	IntervalMS           int64   `json:"reportIntervalMs"`
	Reports              int     `json:"reports"`
	P50MS                float64 `json:"p50Ms"`
	P90MS                float64 `json:"p90Ms"`
	P99MS                float64 `json:"p99Ms"`
	MaxMS                float64 `json:"maxMs"`
	CallP50MS            float64 `json:"reportCallP50Ms"`

	Devices        int     `json:"devices"`
	RSSIdle        memory  `json:"rssNoDevices"`
	RSSDevices     memory  `json:"rssDevicesSettled"`
	RSSReporting   memory  `json:"rssDevicesReporting"`
	PushSeconds    float64 `json:"devicesAtMapperSeconds"`
	ReportsSent    int64   `json:"reportsSent"`
	ReportErrors   int64   `json:"reportErrors"`
	StatusesSeen   int     `json:"deviceStatusesWithValue"`
	EdgecoreCPUSec float64 `json:"edgecoreCPUSeconds"`
}

func runCloud(args []string) error {
	var o cloudOptions
	fs := flag.NewFlagSet("cloud", flag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "_output/local/kubeconfig", "kubeconfig of the cluster")
	fs.StringVar(&o.cloudcore, "cloudcore", "_output/bin/cloudcore", "cloudcore binary")
	fs.StringVar(&o.edgecore, "edgecore", "_output/bin/edgecore", "edgecore binary")
	fs.StringVar(&o.keadm, "keadm", "_output/bin/keadm", "keadm binary (gettoken)")
	fs.StringVar(&o.node, "node", "bench-devices", "edge node name")
	fs.StringVar(&o.namespace, "namespace", "bench-devices", "namespace for the devices (created and deleted)")
	fs.StringVar(&o.workDir, "work-dir", "", "directory for configs, logs, sockets and the edge's data (default: a new temporary one, removed at exit)")
	fs.IntVar(&o.wsPort, "ws-port", 29100, "cloudcore WebSocket port on 127.0.0.1")
	fs.IntVar(&o.bootstrapPort, "bootstrap-port", 29102, "cloudcore bootstrap port")
	fs.IntVar(&o.adminPort, "admin-port", 29106, "cloudcore admin port")
	fs.StringVar(&o.mqtt, "mqtt", "127.0.0.1:29884", "edgecore's internal MQTT broker")
	fs.StringVar(&o.metaServer, "metaserver", "127.0.0.1:29110", "edgecore's MetaServer")
	fs.IntVar(&o.reports, "reports", 200, "latency: ReportDeviceStatus calls timed")
	fs.DurationVar(&o.latencyCycle, "latency-report-cycle", 100*time.Millisecond, "latency: the device's reportCycle (coalescing window = half)")
	fs.DurationVar(&o.interval, "interval", 200*time.Millisecond, "latency: time between reports")
	fs.IntVar(&o.devices, "devices", 1000, "RSS: devices bound to the node (0: skip)")
	fs.DurationVar(&o.deviceCycle, "device-report-cycle", 10*time.Second, "RSS: reportCycle of those devices and the interval of their reports")
	fs.DurationVar(&o.reportFor, "report-for", 30*time.Second, "RSS: how long every device reports once per -device-report-cycle (0: no reports)")
	fs.DurationVar(&o.settle, "settle", 20*time.Second, "RSS: wait before each reading")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "deadline of every wait")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory")
	jsonOut := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.reports < 1 || o.devices < 0 || o.latencyCycle < time.Millisecond || o.deviceCycle < time.Millisecond {
		return errors.New("-reports must be ≥ 1, -devices ≥ 0, report cycles ≥ 1ms")
	}
	b := &cloudBench{o: o}
	ctx, stop := signalContext()
	defer stop()
	err := b.run(ctx)
	b.cleanup()
	if err != nil {
		return err
	}
	if *jsonOut {
		return printJSON(b.res)
	}
	r := b.res
	fmt.Printf("DMI ReportDeviceStatus → DeviceStatus in the API server: %d reports every %d ms, reportCycle %d ms: "+
		"p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms (the DMI call itself: p50 %.2f ms)\n",
		r.Reports, r.IntervalMS, r.LatencyReportCycleMS, r.P50MS, r.P90MS, r.P99MS, r.MaxMS, r.CallP50MS)
	fmt.Printf("edgecore, 0 devices: %s\n", r.RSSIdle)
	if r.Devices > 0 {
		fmt.Printf("edgecore, %d devices (all pushed to the mapper in %.1f s), settled: %s\n", r.Devices, r.PushSeconds, r.RSSDevices)
		if r.ReportsSent > 0 {
			fmt.Printf("edgecore, %d devices reporting every %v for %v (%d reports, %d errors, %d DeviceStatus with a value): %s; edgecore CPU during the reports %.2f s\n",
				r.Devices, o.deviceCycle, o.reportFor, r.ReportsSent, r.ReportErrors, r.StatusesSeen, r.RSSReporting, r.EdgecoreCPUSec)
		}
	}
	return nil
}

type cloudBench struct {
	o       cloudOptions
	res     cloudResult
	work    string
	rmWork  bool
	kube    kubernetes.Interface
	devs    versioned.Interface
	cloud   *process
	edge    *process
	tokenID string

	nodeMade, nsMade bool
	mapper           *fakeMapper
	mapperStop       func()
	dmi              *grpc.ClientConn
}

func (b *cloudBench) run(ctx context.Context) error {
	o := b.o
	cfg, err := clientcmd.BuildConfigFromFlags("", o.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	if b.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if b.devs, err = versioned.NewForConfig(cfg); err != nil {
		return err
	}
	if _, err := b.kube.CoreV1().Nodes().Get(ctx, o.node, metav1.GetOptions{}); err == nil {
		return fmt.Errorf("node %s exists already: another run, or a leftover to delete", o.node)
	}
	if b.work = o.workDir; b.work == "" {
		if b.work, err = os.MkdirTemp("", "skerry-bench-devices-"); err != nil {
			return err
		}
		b.rmWork = !o.keep
	}
	if err := b.startCloudcore(ctx); err != nil {
		return err
	}
	if err := b.startEdgecore(ctx); err != nil {
		return err
	}
	// A previous run's namespace may still be terminating: wait for it to go.
	err = poll(ctx, "namespace "+o.namespace+" to be created", o.timeout, func() (bool, error) {
		_, err := b.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.namespace}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			ns, gerr := b.kube.CoreV1().Namespaces().Get(ctx, o.namespace, metav1.GetOptions{})
			if gerr == nil && ns.DeletionTimestamp == nil {
				return false, fmt.Errorf("namespace %s exists already: another run, or a leftover to delete", o.namespace)
			}
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return err
	}
	b.nsMade = true
	if err := b.startMapper(ctx); err != nil {
		return err
	}
	var model devicesv1beta1.DeviceModel
	if err := decode(modelJSON(o.namespace), &model); err != nil {
		return err
	}
	model.UID = ""
	if _, err := b.devs.DevicesV1beta1().DeviceModels(o.namespace).Create(ctx, &model, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the model: %w", err)
	}

	progress("settling %v with 0 devices", o.settle)
	if err := sleep(ctx, o.settle); err != nil {
		return err
	}
	if b.res.RSSIdle, err = readMemory(b.edge.pid()); err != nil {
		return err
	}
	progress("edgecore, 0 devices: %s", b.res.RSSIdle)

	if err := b.latency(ctx); err != nil {
		return err
	}
	if o.devices > 0 {
		if err := b.many(ctx); err != nil {
			return err
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func (b *cloudBench) startCloudcore(ctx context.Context) error {
	o := b.o
	kubeconfig, err := filepath.Abs(o.kubeconfig)
	if err != nil {
		return err
	}
	conf := fmt.Sprintf(`apiVersion: cloudcore.config.skerry.io/v1alpha1
kind: CloudCore
kubeAPI: {kubeconfig: %q}
hub:
  websocket: {enable: true, address: "127.0.0.1:%d"}
  quic: {enable: false}
bootstrap: {address: "127.0.0.1:%d", advertiseAddresses: [127.0.0.1]}
admin: {address: "127.0.0.1:%d"}
admission: {enable: false}
`, kubeconfig, o.wsPort, o.bootstrapPort, o.adminPort)
	path := filepath.Join(b.work, "cloudcore.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return err
	}
	if b.cloud, err = startProcess("cloudcore", filepath.Join(b.work, "cloudcore.log"), o.cloudcore, "--config", path); err != nil {
		return err
	}
	return poll(ctx, "cloudcore /readyz", time.Minute, func() (bool, error) {
		if err := b.cloud.exited(); err != nil {
			return false, err
		}
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", o.adminPort)), nil
	})
}

var tokenIDRe = regexp.MustCompile(`keadm revoketoken (\S+)`)

func (b *cloudBench) dmiSocket() string    { return filepath.Join(b.work, "dmi.sock") }
func (b *cloudBench) mapperSocket() string { return filepath.Join(b.work, "mapper.sock") }

func (b *cloudBench) startEdgecore(ctx context.Context) error {
	o := b.o
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(tctx, o.keadm, "gettoken", "--kubeconfig", o.kubeconfig, "--node", o.node,
		"--single-use", "--ttl", "30m", "--description", "bench/devices")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("keadm gettoken: %w: %s", err, stderr.String())
	}
	if m := tokenIDRe.FindStringSubmatch(stderr.String()); m != nil {
		b.tokenID = m[1]
	}
	// Edged off: this node runs no pods, so containerd is not involved.
	conf := fmt.Sprintf(`apiVersion: edgecore.config.skerry.io/v1alpha1
kind: EdgeCore
nodeName: %s
dataDir: %s
hub:
  server: "127.0.0.1:%d"
  bootstrapServer: "127.0.0.1:%d"
  token: %q
metaServer: {address: %q}
edged: {enable: false}
eventBus: {enable: true, mode: internal, internal: {address: %q}}
deviceTwin: {enable: true, dmi: {socket: %q}}
`, o.node, filepath.Join(b.work, "edge"), o.wsPort, o.bootstrapPort, strings.TrimSpace(string(out)), o.metaServer, o.mqtt, b.dmiSocket())
	path := filepath.Join(b.work, "edgecore.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return err
	}
	t0 := time.Now()
	if b.edge, err = startProcess("edgecore", filepath.Join(b.work, "edgecore.log"), o.edgecore, "--config", path); err != nil {
		return err
	}
	b.nodeMade = true
	// The node stays NotReady: edged is off and there may be no container runtime. The
	// device path only needs the node registered and its hub connected.
	err = poll(ctx, "node "+o.node+" registered", o.timeout, func() (bool, error) {
		if err := b.edge.exited(); err != nil {
			return false, err
		}
		_, err := b.kube.CoreV1().Nodes().Get(ctx, o.node, metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return err
	}
	progress("edgecore joined in %.1f s (pid %d)", time.Since(t0).Seconds(), b.edge.pid())
	return nil
}

// fakeMapper serves DeviceMapperService: it accepts every device and model the edge pushes
// and counts the devices it holds.
type fakeMapper struct {
	pb.UnimplementedDeviceMapperServiceServer
	mu      sync.Mutex
	devices map[string]bool
}

func (m *fakeMapper) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.devices)
}

func (m *fakeMapper) set(d *pb.Device, on bool) {
	if d == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if on {
		m.devices[d.GetNamespace()+"/"+d.GetName()] = true
	} else {
		delete(m.devices, d.GetNamespace()+"/"+d.GetName())
	}
}

func (m *fakeMapper) RegisterDevice(_ context.Context, r *pb.RegisterDeviceRequest) (*pb.RegisterDeviceResponse, error) {
	m.set(r.GetDevice(), true)
	return &pb.RegisterDeviceResponse{}, nil
}

func (m *fakeMapper) UpdateDevice(_ context.Context, r *pb.UpdateDeviceRequest) (*pb.UpdateDeviceResponse, error) {
	m.set(r.GetDevice(), true)
	return &pb.UpdateDeviceResponse{}, nil
}

func (m *fakeMapper) RemoveDevice(_ context.Context, r *pb.RemoveDeviceRequest) (*pb.RemoveDeviceResponse, error) {
	m.set(&pb.Device{Name: r.GetDeviceName(), Namespace: r.GetDeviceNamespace()}, false)
	return &pb.RemoveDeviceResponse{}, nil
}

func (m *fakeMapper) CreateDeviceModel(context.Context, *pb.CreateDeviceModelRequest) (*pb.CreateDeviceModelResponse, error) {
	return &pb.CreateDeviceModelResponse{}, nil
}

func (m *fakeMapper) UpdateDeviceModel(context.Context, *pb.UpdateDeviceModelRequest) (*pb.UpdateDeviceModelResponse, error) {
	return &pb.UpdateDeviceModelResponse{}, nil
}

func (m *fakeMapper) RemoveDeviceModel(context.Context, *pb.RemoveDeviceModelRequest) (*pb.RemoveDeviceModelResponse, error) {
	return &pb.RemoveDeviceModelResponse{}, nil
}

// startMapper serves the fake mapper on its socket and registers it with the edge.
func (b *cloudBench) startMapper(ctx context.Context) error {
	b.mapper = &fakeMapper{devices: map[string]bool{}}
	ln, err := net.Listen("unix", b.mapperSocket())
	if err != nil {
		return fmt.Errorf("mapper socket: %w", err)
	}
	srv := grpc.NewServer()
	pb.RegisterDeviceMapperServiceServer(srv, b.mapper)
	// Stopped by cleanup; Stop closes the listener and ends Serve.
	go func() { _ = srv.Serve(ln) }()
	b.mapperStop = srv.Stop
	if b.dmi, err = grpc.NewClient("unix://"+b.dmiSocket(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return fmt.Errorf("dmi client: %w", err)
	}
	c := pb.NewDeviceManagerServiceClient(b.dmi)
	return poll(ctx, "MapperRegister", b.o.timeout, func() (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := c.MapperRegister(cctx, &pb.MapperRegisterRequest{WithData: true, Mapper: &pb.MapperInfo{
			Name: "bench-mapper", Version: "v1", ApiVersion: "v1beta1", Protocol: benchProtocol,
			Address: []byte(b.mapperSocket()), State: "ok",
		}})
		return err == nil, nil
	})
}

func report(ctx context.Context, c pb.DeviceManagerServiceClient, ns, name, value string) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.ReportDeviceStatus(cctx, &pb.ReportDeviceStatusRequest{
		DeviceName: name, DeviceNamespace: ns,
		ReportedDevice: &pb.DeviceStatus{Twins: []*pb.Twin{{PropertyName: "temperature", Reported: &pb.TwinProperty{
			Value: value, Metadata: map[string]string{"timestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "type": "float"},
		}}}},
	})
	return err
}

func (b *cloudBench) createDevice(ctx context.Context, name string, cycle time.Duration) error {
	var d devicesv1beta1.Device
	if err := decode(deviceJSON(b.o.namespace, name, b.o.node, cycle.Milliseconds()), &d); err != nil {
		return err
	}
	d.UID = ""
	if _, err := b.devs.DevicesV1beta1().Devices(b.o.namespace).Create(ctx, &d, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating device %s: %w", name, err)
	}
	return nil
}

// reportedOf is the reported temperature in a DeviceStatus.
func reportedOf(ds *devicesv1beta1.DeviceStatus) string {
	for _, t := range ds.Status.Twins {
		if t.PropertyName == "temperature" && t.Reported != nil {
			return t.Reported.Value
		}
	}
	return ""
}

// statusWatch records when each (device, reported value) first shows in the API server.
type statusWatch struct {
	mu   sync.Mutex
	seen map[string]time.Time // name + "=" + value
	wake chan struct{}
	done chan struct{}
}

func (b *cloudBench) watchStatuses(ctx context.Context) (*statusWatch, error) {
	sw := &statusWatch{seen: map[string]time.Time{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	dc := b.devs.DevicesV1beta1().DeviceStatuses(b.o.namespace)
	l, err := dc.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing DeviceStatuses: %w", err)
	}
	rv := l.ResourceVersion
	go func() {
		defer close(sw.done)
		for ctx.Err() == nil {
			w, err := dc.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
					rv = ""
				}
				_ = sleep(ctx, 100*time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				ds, ok := ev.Object.(*devicesv1beta1.DeviceStatus)
				if !ok {
					continue
				}
				rv = ds.ResourceVersion
				if ev.Type != watch.Added && ev.Type != watch.Modified {
					continue
				}
				now := time.Now()
				k := ds.Name + "=" + reportedOf(ds)
				sw.mu.Lock()
				if _, ok := sw.seen[k]; !ok {
					sw.seen[k] = now
				}
				sw.mu.Unlock()
				select {
				case sw.wake <- struct{}{}:
				default:
				}
			}
			w.Stop()
		}
	}()
	return sw, nil
}

// wait returns when name=value was first seen.
func (sw *statusWatch) wait(ctx context.Context, name, value string, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		sw.mu.Lock()
		t, ok := sw.seen[name+"="+value]
		sw.mu.Unlock()
		if ok {
			return t, nil
		}
		select {
		case <-sw.wake:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return time.Time{}, fmt.Errorf("DeviceStatus %s did not show %q within %v", name, value, timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// latency times o.reports reports of one device, from the ReportDeviceStatus call to the
// watch event carrying the value.
func (b *cloudBench) latency(ctx context.Context) error {
	o := b.o
	const name = "latency-0"
	if err := b.createDevice(ctx, name, o.latencyCycle); err != nil {
		return err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	sw, err := b.watchStatuses(wctx)
	if err != nil {
		stopWatch()
		return err
	}
	defer func() { stopWatch(); <-sw.done }()
	c := pb.NewDeviceManagerServiceClient(b.dmi)
	// Warm-up: until the device has reached the edge, reports fail with NotFound.
	err = poll(ctx, "the edge to accept reports of "+name, o.timeout, func() (bool, error) {
		err := report(ctx, c, o.namespace, name, "0.5")
		if code := status.Code(err); code == codes.NotFound || code == codes.FailedPrecondition {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return err
	}
	if _, err := sw.wait(ctx, name, "0.5", o.timeout); err != nil {
		return err
	}
	progress("timing %d reports, one every %v, reportCycle %v", o.reports, o.interval, o.latencyCycle)
	var lat, calls []time.Duration
	next := time.Now()
	for i := 1; i <= o.reports; i++ {
		if err := sleep(ctx, time.Until(next)); err != nil {
			return err
		}
		next = next.Add(o.interval)
		v := strconv.Itoa(i) + ".5"
		t0 := time.Now()
		if err := report(ctx, c, o.namespace, name, v); err != nil {
			return fmt.Errorf("report %d: %w", i, err)
		}
		calls = append(calls, time.Since(t0))
		seen, err := sw.wait(ctx, name, v, o.timeout)
		if err != nil {
			return err
		}
		lat = append(lat, seen.Sub(t0))
	}
	r := &b.res
	r.LatencyReportCycleMS, r.IntervalMS, r.Reports = o.latencyCycle.Milliseconds(), o.interval.Milliseconds(), o.reports
	r.P50MS, r.P90MS, r.P99MS = ms(percentile(lat, 0.5)), ms(percentile(lat, 0.9)), ms(percentile(lat, 0.99))
	r.MaxMS = ms(lat[len(lat)-1])
	r.CallP50MS = ms(percentile(calls, 0.5))
	progress("latency p50 %.1f ms p99 %.1f ms", r.P50MS, r.P99MS)
	return nil
}

// many binds o.devices devices to the node and reads edgecore's memory once they are all at
// the mapper, and again while each reports once per device cycle.
func (b *cloudBench) many(ctx context.Context) error {
	o := b.o
	before := b.mapper.count()
	t0 := time.Now()
	progress("creating %d devices", o.devices)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for i := range o.devices {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := b.createDevice(ctx, fmt.Sprintf("dev-%04d", i), o.deviceCycle); err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		return *err
	}
	err := poll(ctx, "every device at the mapper", 2*o.timeout, func() (bool, error) {
		return b.mapper.count() >= before+o.devices, b.edge.exited()
	})
	if err != nil {
		return fmt.Errorf("%w (%d of %d)", err, b.mapper.count()-before, o.devices)
	}
	b.res.Devices = o.devices
	b.res.PushSeconds = time.Since(t0).Seconds()
	progress("%d devices at the mapper after %.1f s; settling %v", o.devices, b.res.PushSeconds, o.settle)
	if err := sleep(ctx, o.settle); err != nil {
		return err
	}
	if b.res.RSSDevices, err = readMemory(b.edge.pid()); err != nil {
		return err
	}
	progress("edgecore, %d devices: %s", o.devices, b.res.RSSDevices)
	if o.reportFor <= 0 {
		return nil
	}

	// Every device reports once per cycle, spread evenly over the cycle.
	c := pb.NewDeviceManagerServiceClient(b.dmi)
	cpu0 := cpuSeconds(b.edge.pid())
	gap := o.deviceCycle / time.Duration(o.devices)
	end := time.Now().Add(o.reportFor)
	next := time.Now()
	var sent, failed atomic.Int64
	for i := 0; time.Now().Before(end); i++ {
		if err := sleep(ctx, time.Until(next)); err != nil {
			return err
		}
		next = next.Add(gap)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			round := i / o.devices
			err := report(ctx, c, o.namespace, fmt.Sprintf("dev-%04d", i%o.devices), strconv.Itoa(round)+".25")
			sent.Add(1)
			if err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	b.res.EdgecoreCPUSec = cpuSeconds(b.edge.pid()) - cpu0
	if b.res.RSSReporting, err = readMemory(b.edge.pid()); err != nil {
		return err
	}
	b.res.ReportsSent, b.res.ReportErrors = sent.Load(), failed.Load()
	// How many DeviceStatus objects hold a reported value by now (after one more window).
	_ = sleep(ctx, o.deviceCycle/2+2*time.Second)
	l, err := b.devs.DevicesV1beta1().DeviceStatuses(o.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range l.Items {
		if strings.HasPrefix(l.Items[i].Name, "dev-") && reportedOf(&l.Items[i]) != "" {
			b.res.StatusesSeen++
		}
	}
	progress("edgecore, %d devices reporting: %s", o.devices, b.res.RSSReporting)
	return nil
}

// cpuSeconds is the user+system CPU time of pid (from /proc/<pid>/stat), or 0.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// cleanup removes what the run created: the namespace (devices first, while edgecore runs,
// so that the edge drops them), the mapper, edgecore, cloudcore, the Node and its Lease,
// the token and the work directory. Every step has a deadline.
func (b *cloudBench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if b.nsMade {
		dc := b.devs.DevicesV1beta1()
		if err := dc.Devices(b.o.namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			progress("deleting devices: %v", err)
		}
		_ = dc.DeviceModels(b.o.namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		if err := b.kube.CoreV1().Namespaces().Delete(ctx, b.o.namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			progress("deleting namespace: %v", err)
		}
	}
	if b.dmi != nil {
		_ = b.dmi.Close()
	}
	if b.mapperStop != nil {
		b.mapperStop()
	}
	if b.edge != nil {
		b.edge.stop()
	}
	if b.cloud != nil {
		b.cloud.stop()
	}
	if b.nodeMade {
		if err := b.kube.CoreV1().Nodes().Delete(ctx, b.o.node, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			progress("deleting node: %v", err)
		}
		if err := b.kube.CoordinationV1().Leases("kube-node-lease").Delete(ctx, b.o.node, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			progress("deleting lease: %v", err)
		}
	}
	if b.tokenID != "" {
		// Single-use: gone once the node joined; revoke in case it did not.
		_ = exec.CommandContext(ctx, b.o.keadm, "revoketoken", "--kubeconfig", b.o.kubeconfig, b.tokenID).Run()
	}
	if b.rmWork {
		if err := os.RemoveAll(b.work); err != nil {
			progress("removing %s: %v", b.work, err)
		}
	} else if b.work != "" {
		progress("work directory kept: %s", b.work)
	}
}
