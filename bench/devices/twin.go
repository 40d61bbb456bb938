package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/skerry-io/skerry/edge/devicetwin"
	"github.com/skerry-io/skerry/edge/eventbus"
	"github.com/skerry-io/skerry/edge/store"
	"github.com/skerry-io/skerry/pkg/wire"
)

// twinNode is the node name of the in-process twin.
const twinNode = "bench-node"

type twinOptions struct {
	devices, clients, inflight int
	duration, timeout          time.Duration
	cycles                     string
	dir                        string
}

// twinResult is one run of the twin benchmark.
type twinResult struct {
	ReportCycleMS int64   `json:"reportCycleMs"`
	WindowMS      float64 `json:"windowMs"`
	Devices       int     `json:"devices"`
	Clients       int     `json:"clients"`
	InFlight      int     `json:"inFlightPerClient"`
	Seconds       float64 `json:"seconds"`
	Accepted      int64   `json:"accepted"`
	Refused       int64   `json:"refused"`
	PerSecond     float64 `json:"acceptedPerSecond"`
	P50MS         float64 `json:"resultP50Ms"`
	P99MS         float64 `json:"resultP99Ms"`
	// Enqueues are the twin's DeviceStatus enqueues into the outbox during the run:
	// the messages the cloud would receive with an uplink that keeps up.
	Enqueues       int64   `json:"enqueues"`
	EnqueuesPerSec float64 `json:"enqueuesPerSecond"`
	// Drained counts the enqueues after the last window closed (the newest values).
	Drained int64 `json:"enqueuesAfterDrain"`
	// OutboxCoalesced is the store's own replacement of pending entries by newer ones
	// (nothing acks here, so it is what the outbox would collapse if the uplink stalled).
	OutboxCoalesced uint64 `json:"outboxCoalesced"`
}

func runTwin(args []string) error {
	var o twinOptions
	fs := flag.NewFlagSet("twin", flag.ContinueOnError)
	fs.IntVar(&o.devices, "devices", 100, "devices in the twin")
	fs.IntVar(&o.clients, "clients", 4, "MQTT clients publishing, each for its own devices")
	fs.IntVar(&o.inflight, "inflight", 4, "twin/update requests in flight per client")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "publishing time per run")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "wait for a result before giving up")
	fs.StringVar(&o.cycles, "report-cycles", "1000,1", "comma-separated reportCycle values (ms): one run each; 1 ms leaves a 0.5 ms window, i.e. no coalescing")
	fs.StringVar(&o.dir, "dir", "", "directory for the stores (default: a new temporary one, removed at exit)")
	jsonOut := fs.Bool("json", false, "print the results as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case o.devices < 1 || o.clients < 1 || o.inflight < 1:
		return errors.New("-devices, -clients and -inflight must be at least 1")
	case o.devices < o.clients:
		return errors.New("-devices must be at least -clients")
	case o.duration <= 0:
		return errors.New("-duration must be positive")
	}
	var cycles []int64
	for _, f := range strings.Split(o.cycles, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("-report-cycles: %q is not a positive integer", f)
		}
		cycles = append(cycles, n)
	}
	if o.dir == "" {
		d, err := os.MkdirTemp("", "skerry-bench-twin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	ctx, stop := signalContext()
	defer stop()
	var results []twinResult
	for i, c := range cycles {
		r, err := twinRun(ctx, o, fmt.Sprintf("%s/run%d", o.dir, i), c)
		if err != nil {
			return fmt.Errorf("reportCycle %d ms: %w", c, err)
		}
		results = append(results, r)
		if !*jsonOut {
			fmt.Printf("reportCycle %5d ms (window %.1f ms): %d devices, %d clients × %d in flight, %.1f s: "+
				"%d updates accepted (%.0f/s, result p50 %.2f ms p99 %.2f ms), %d refused; "+
				"%d DeviceStatus enqueues (%.1f/s), %d more after the last window; outbox replaced %d pending\n",
				r.ReportCycleMS, r.WindowMS, r.Devices, r.Clients, r.InFlight, r.Seconds, r.Accepted, r.PerSecond,
				r.P50MS, r.P99MS, r.Refused, r.Enqueues, r.EnqueuesPerSec, r.Drained, r.OutboxCoalesced)
		}
	}
	if *jsonOut {
		return printJSON(results)
	}
	return nil
}

// countingOutbox counts the twin's enqueues on their way into the store's outbox.
type countingOutbox struct {
	out *store.Outbox
	n   atomic.Int64
}

func (c *countingOutbox) Enqueue(ctx context.Context, m *wire.Message, class store.Class) (int64, error) {
	id, err := c.out.Enqueue(ctx, m, class)
	if err == nil {
		c.n.Add(1)
	}
	return id, err
}

// twinRun builds a real store, EventBus and Twin with o.devices devices whose reportCycle
// is cycleMS, and has o.clients paho clients publish twin/update with new actual values
// for o.duration, each keeping o.inflight requests in flight.
func twinRun(ctx context.Context, o twinOptions, dir string, cycleMS int64) (twinResult, error) {
	res := twinResult{ReportCycleMS: cycleMS, WindowMS: float64(cycleMS) / 2, Devices: o.devices, Clients: o.clients, InFlight: o.inflight}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.Open(ctx, dir, store.Options{Logger: quiet})
	if err != nil {
		return res, err
	}
	defer db.Close()

	// Client c publishes for the devices of namespace bench-c<c>, so that it can subscribe
	// to its own results only.
	perClient := make([][]string, o.clients)
	for i := range o.devices {
		c := i % o.clients
		ns := fmt.Sprintf("bench-c%d", c)
		if len(perClient[c]) == 0 {
			if err := applyJSON(ctx, db, ns+"/devicemodel/bench-model", modelJSON(ns)); err != nil {
				return res, err
			}
		}
		name := fmt.Sprintf("dev-%d", i)
		if err := applyJSON(ctx, db, ns+"/device/"+name, deviceJSON(ns, name, twinNode, cycleMS)); err != nil {
			return res, err
		}
		perClient[c] = append(perClient[c], name)
	}

	cfg := eventbus.Default()
	cfg.Internal.Address = "127.0.0.1:0"
	bus, err := eventbus.New(cfg, quiet)
	if err != nil {
		return res, err
	}
	outbox := &countingOutbox{out: db.Outbox()}
	twin, err := devicetwin.New(devicetwin.Config{NodeName: twinNode, Store: db, Outbox: outbox, Bus: bus, Logger: quiet})
	if err != nil {
		return res, err
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- bus.Run(rctx) }()
	defer func() { cancel(); wg.Wait() }()
	select {
	case <-bus.Ready():
	case err := <-errs:
		return res, fmt.Errorf("eventbus: %v", err)
	case <-time.After(o.timeout):
		return res, errors.New("eventbus not ready")
	}
	go func() { defer wg.Done(); errs <- twin.Run(rctx) }()
	// The twin has loaded the devices once a twin/get answers.
	if err := waitTwinReady(ctx, bus.InternalAddr(), "bench-c0/"+perClient[0][0], o.timeout); err != nil {
		return res, err
	}

	clients := make([]*twinClient, o.clients)
	for c := range clients {
		tc, err := newTwinClient(bus.InternalAddr(), fmt.Sprintf("bench-c%d", c), perClient[c], o.inflight)
		if err != nil {
			return res, err
		}
		defer tc.close()
		clients[c] = tc
	}
	before := outbox.n.Load()
	t0 := time.Now()
	deadline := t0.Add(o.duration)
	var cwg sync.WaitGroup
	cerrs := make([]error, len(clients))
	for i, tc := range clients {
		cwg.Add(1)
		go func() { defer cwg.Done(); cerrs[i] = tc.run(ctx, deadline, o.timeout) }()
	}
	cwg.Wait()
	elapsed := time.Since(t0)
	if err := errors.Join(cerrs...); err != nil {
		return res, err
	}
	res.Enqueues = outbox.n.Load() - before
	// Let the last window close (plus the flusher's turn) and count what it sent.
	time.Sleep(time.Duration(cycleMS)*time.Millisecond/2 + 200*time.Millisecond)
	res.Drained = outbox.n.Load() - before - res.Enqueues
	res.OutboxCoalesced = db.Outbox().Stats().Coalesced

	var lat []time.Duration
	for _, tc := range clients {
		res.Accepted += tc.accepted
		res.Refused += tc.refused
		lat = append(lat, tc.lat...)
	}
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(res.Accepted) / elapsed.Seconds()
	res.EnqueuesPerSec = float64(res.Enqueues) / elapsed.Seconds()
	res.P50MS, res.P99MS = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99))
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return res, err
		}
	}
	return res, nil
}

func applyJSON(ctx context.Context, db *store.DB, key, doc string) error {
	m := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: wire.OpInsert, Resource: key}, json.RawMessage(doc))
	if err := db.ApplyMessage(ctx, m); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	return nil
}

func connectMQTT(addr, id string) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetAutoReconnect(false).SetOrderMatters(false).SetConnectTimeout(10 * time.Second)
	c := mqtt.NewClient(opts)
	if err := waitToken(c.Connect()); err != nil {
		return nil, fmt.Errorf("mqtt connect %s: %w", addr, err)
	}
	return c, nil
}

func waitToken(t mqtt.Token) error {
	if !t.WaitTimeout(10 * time.Second) {
		return errors.New("timed out")
	}
	return t.Error()
}

// waitTwinReady asks twin/get of device id until the answer carries a twin.
func waitTwinReady(ctx context.Context, addr, id string, timeout time.Duration) error {
	c, err := connectMQTT(addr, "bench-ready")
	if err != nil {
		return err
	}
	defer c.Disconnect(100)
	got := make(chan []byte, 16)
	base := "$hw/events/device/" + id + "/twin/get"
	if err := waitToken(c.Subscribe(base+"/result", 0, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	})); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	deadline := time.After(timeout)
	for {
		c.Publish(base, 0, false, `{"event_id":"ready","timestamp":1}`)
		select {
		case p := <-got:
			if strings.Contains(string(p), `"temperature"`) {
				return nil
			}
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return fmt.Errorf("the twin did not answer twin/get of %s within %v", id, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// twinClient publishes twin/update for its devices, round robin, with up to inflight
// requests unanswered.
type twinClient struct {
	c        mqtt.Client
	ns       string
	devices  []string
	slots    chan struct{}
	mu       sync.Mutex
	sent     map[string]time.Time // event_id → publish time
	accepted int64
	refused  int64
	lat      []time.Duration
	next     int
}

func newTwinClient(addr, ns string, devices []string, inflight int) (*twinClient, error) {
	tc := &twinClient{ns: ns, devices: devices, slots: make(chan struct{}, inflight), sent: map[string]time.Time{}}
	c, err := connectMQTT(addr, "bench-"+ns)
	if err != nil {
		return nil, err
	}
	tc.c = c
	if err := waitToken(c.Subscribe("$hw/events/device/"+ns+"/+/twin/update/result", 0, tc.onResult)); err != nil {
		c.Disconnect(100)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return tc, nil
}

func (tc *twinClient) close() { tc.c.Disconnect(100) }

func (tc *twinClient) onResult(_ mqtt.Client, m mqtt.Message) {
	var r struct {
		EventID string `json:"event_id"`
		Code    int    `json:"code"`
	}
	if json.Unmarshal(m.Payload(), &r) != nil {
		return
	}
	tc.mu.Lock()
	t0, ok := tc.sent[r.EventID]
	if ok {
		delete(tc.sent, r.EventID)
		if r.Code == 0 {
			tc.accepted++
			tc.lat = append(tc.lat, time.Since(t0))
		} else {
			tc.refused++
		}
	}
	tc.mu.Unlock()
	if ok {
		<-tc.slots
	}
}

// run publishes until deadline, then waits for the outstanding results.
func (tc *twinClient) run(ctx context.Context, deadline time.Time, timeout time.Duration) error {
	for seq := 0; time.Now().Before(deadline); seq++ {
		select {
		case tc.slots <- struct{}{}:
		case <-time.After(timeout):
			return fmt.Errorf("%s: no result within %v", tc.ns, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
		dev := tc.devices[tc.next]
		tc.next = (tc.next + 1) % len(tc.devices)
		id := tc.ns + "-" + strconv.Itoa(seq)
		// A new value every time: a repeated value would change nothing.
		payload := fmt.Sprintf(`{"event_id":%q,"timestamp":%d,"twin":{"temperature":{"actual":{"value":"%d.5"}}}}`,
			id, time.Now().UnixMilli(), seq)
		tc.mu.Lock()
		tc.sent[id] = time.Now()
		tc.mu.Unlock()
		tc.c.Publish("$hw/events/device/"+tc.ns+"/"+dev+"/twin/update", 0, false, payload)
	}
	for i := 0; i < cap(tc.slots); i++ {
		select {
		case tc.slots <- struct{}{}:
		case <-time.After(timeout):
			return fmt.Errorf("%s: outstanding results missing after %v", tc.ns, timeout)
		}
	}
	return nil
}
