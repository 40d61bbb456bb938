package mapper

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skerry-io/skerry/api/dmi/v1beta1"
)

// Device states reported with ReportDeviceStates (KubeEdge's words).
const (
	StateOK           = "ok"
	StateDisconnected = "disconnected"
	StateUnhealthy    = "unhealthy"
)

// rpcTimeout bounds one report call to the edge.
const rpcTimeout = 5 * time.Second

// twinState is what the SDK knows of one property; it outlives a runner so that an updated
// device neither rewrites a desired value it already applied nor loses its last reading.
type twinState struct {
	reported   Value
	reportedAt time.Time
	readErr    bool
	// badValue is set while the device returns values the model does not allow.
	badValue bool
	// applied is the last desired value written, as the spec spelled it.
	applied   string
	appliedAt time.Time
	// rejected is a desired value that failed validation, so it is logged once, not every cycle.
	rejected string
}

// runner drives one device: it connects, polls, applies desired values and reports, until its
// context is cancelled. A runner replacing another first waits for the old one to finish, so
// two never talk to the same device at once.
type runner struct {
	m      *Mapper
	dev    *Device
	spec   *v1beta1.Device // the DMI device dev was decoded from; never modified
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	prev   *runner
	// stateCycle is how often the state is reported when it does not change.
	stateCycle time.Duration

	mu    sync.Mutex
	twins map[string]*twinState
	state string

	stateChanged chan struct{}
	pushQ        chan pushJob
}

func newRunner(m *Mapper, dev *Device, stateCycle time.Duration, prev *runner) *runner {
	return &runner{
		m:            m,
		dev:          dev,
		log:          m.log.With("device", key(dev.Namespace, dev.Name)),
		done:         make(chan struct{}),
		prev:         prev,
		stateCycle:   stateCycle,
		twins:        make(map[string]*twinState, len(dev.Properties)),
		stateChanged: make(chan struct{}, 1),
		pushQ:        make(chan pushJob, pushQueueLen),
	}
}

func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	if r.prev != nil {
		// Wait for the old runner even when this one is already replaced: the next one
		// inherits from this one, so skipping the inheritance would lose the applied
		// desired values and last readings. The old runner is cancelled and ends promptly.
		r.prev.cancel()
		<-r.prev.done
		r.inherit(r.prev)
		r.prev = nil // let the old runner be collected
		if ctx.Err() != nil {
			return
		}
	}
	for _, p := range r.dev.Properties {
		if p.Push != nil && len(p.Push.Unsupported) > 0 {
			r.log.Warn("push method not supported by this mapper, values are not sent there",
				"property", p.Name, "methods", strings.Join(p.Push.Unsupported, ","))
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.stateLoop(ctx) })
	wg.Go(func() { r.pushLoop(ctx) })

	backoff := r.m.cfg.RetryMin
	for ctx.Err() == nil {
		conn, err := r.m.drv.Connect(ctx, r.copyDevice())
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.setState(StateDisconnected)
			r.log.Warn("connect failed", "err", err, "retry", backoff)
		} else {
			r.setState(StateOK)
			r.log.Info("connected")
			err = r.poll(ctx, conn)
			if cerr := conn.Close(); cerr != nil {
				r.log.Debug("close failed", "err", cerr)
			}
			if ctx.Err() != nil {
				return
			}
			backoff = r.m.cfg.RetryMin
			r.log.Warn("device failing, reconnecting", "err", err, "retry", backoff)
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, r.m.cfg.RetryMax)
	}
}

func (r *runner) inherit(prev *runner) {
	prev.mu.Lock()
	defer prev.mu.Unlock()
	for _, p := range r.dev.Properties {
		if t, ok := prev.twins[p.Name]; ok {
			c := *t
			c.readErr = false
			r.twins[p.Name] = &c
		}
	}
}

// copyDevice gives the driver its own copy, so a driver that keeps or changes it cannot race
// with the SDK.
func (r *runner) copyDevice() *Device {
	d := *r.dev
	d.Properties = make([]*Property, len(r.dev.Properties))
	for i, p := range r.dev.Properties {
		c := *p
		d.Properties[i] = &c
	}
	return &d
}

// poll reads every property on its collect cycle and reports on the shortest report cycle,
// until the context ends or every read keeps failing.
func (r *runner) poll(ctx context.Context, conn DeviceConn) error {
	props := r.dev.Properties
	now := time.Now()
	next := make([]time.Time, len(props))
	reportEvery := defaultCycle
	for i, p := range props {
		next[i] = now
		if i == 0 || p.ReportCycle < reportEvery {
			reportEvery = p.ReportCycle
		}
	}
	nextReport := now.Add(reportEvery)
	// Reconnect after this many reads in a row failed: every property had its chance.
	maxFailures := max(3, len(props))
	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()

	r.applyDesired(ctx, conn)
	for {
		now = time.Now()
		for i, p := range props {
			if now.Before(next[i]) {
				continue
			}
			next[i] = next[i].Add(p.CollectCycle)
			if next[i].Before(now) {
				next[i] = now.Add(p.CollectCycle)
			}
			if err := r.read(ctx, conn, p); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				failures++
				if failures >= maxFailures {
					return err
				}
				continue
			}
			failures = 0
		}
		if !now.Before(nextReport) {
			// From now, not from the missed slot: a report that came late (a loaded
			// machine) is never followed by one less than a cycle later.
			nextReport = now.Add(reportEvery)
			if r.applyDesired(ctx, conn) == 0 {
				r.reportTwins(ctx)
			}
		}
		wake := nextReport
		for _, t := range next {
			if t.Before(wake) {
				wake = t
			}
		}
		timer.Reset(time.Until(wake))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// read reads one property and records the value; the error is the driver's.
func (r *runner) read(ctx context.Context, conn DeviceConn, p *Property) error {
	v, err := conn.Read(ctx, p)
	if err == nil {
		v, err = p.Check(v)
		if err != nil {
			// The device answered, but with something the model does not allow: say so
			// once, and keep the device healthy.
			r.mu.Lock()
			t := r.twin(p.Name)
			first := !t.badValue
			t.badValue = true
			r.mu.Unlock()
			if first {
				r.log.Warn("value read does not fit the model", "property", p.Name, "err", err)
			}
			return nil
		}
	}
	now := time.Now()
	r.mu.Lock()
	t := r.twin(p.Name)
	failedBefore := t.readErr
	t.readErr = err != nil
	if err == nil {
		t.reported, t.reportedAt, t.badValue = v, now, false
	}
	unhealthy := false
	for _, t := range r.twins {
		unhealthy = unhealthy || t.readErr
	}
	r.mu.Unlock()
	if err != nil {
		if !failedBefore {
			r.log.Warn("read failed", "property", p.Name, "err", err)
		}
		r.setState(StateUnhealthy)
		return err
	}
	if failedBefore {
		r.log.Info("read works again", "property", p.Name)
	}
	if !unhealthy {
		r.setState(StateOK)
	}
	if p.Push != nil && (p.Push.HTTP != nil || p.Push.MQTT != nil) {
		r.enqueuePush(p, v, now)
	}
	return nil
}

// twin returns the state of a property, creating it; r.mu must be held.
func (r *runner) twin(name string) *twinState {
	t, ok := r.twins[name]
	if !ok {
		t = &twinState{}
		r.twins[name] = t
	}
	return t
}

// applyDesired writes each desired value not applied yet; it reports the twins itself when it
// wrote something, and returns how many values it wrote.
func (r *runner) applyDesired(ctx context.Context, conn DeviceConn) int {
	written := 0
	for _, p := range r.dev.Properties {
		if p.Desired == "" {
			continue
		}
		r.mu.Lock()
		t := r.twin(p.Name)
		skip := t.applied == p.Desired || t.rejected == p.Desired
		r.mu.Unlock()
		if skip {
			continue
		}
		v, err := ParseValue(p.Type, p.Desired)
		if err == nil {
			v, err = p.Check(v)
		}
		if err == nil && !p.Writable() {
			err = errReadOnly
		}
		if err != nil {
			r.mu.Lock()
			r.twin(p.Name).rejected = p.Desired
			r.mu.Unlock()
			r.log.Error("desired value rejected", "property", p.Name, "desired", truncate(p.Desired), "err", err)
			continue
		}
		if err := conn.Write(ctx, p, v); err != nil {
			// Tried again on the next report cycle.
			r.log.Warn("write failed", "property", p.Name, "desired", truncate(p.Desired), "err", err)
			continue
		}
		r.mu.Lock()
		t = r.twin(p.Name)
		t.applied, t.appliedAt = p.Desired, time.Now()
		r.mu.Unlock()
		r.log.Info("desired value applied", "property", p.Name, "value", truncate(p.Desired))
		written++
	}
	if written > 0 {
		r.reportTwins(ctx)
	}
	return written
}

type readOnlyError struct{}

func (readOnlyError) Error() string { return "property is ReadOnly in the model" }

var errReadOnly error = readOnlyError{}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// status builds the twins the edge is told about: every property with a reading or an applied
// desired value.
func (r *runner) status() *v1beta1.DeviceStatus {
	st := &v1beta1.DeviceStatus{}
	minCycle := time.Duration(0)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.dev.Properties {
		st.ReportToCloud = st.ReportToCloud || p.ReportToCloud
		if minCycle == 0 || p.ReportCycle < minCycle {
			minCycle = p.ReportCycle
		}
		t, ok := r.twins[p.Name]
		if !ok || (t.reported.IsZero() && t.applied == "") {
			continue
		}
		typ := strings.ToLower(string(p.Type))
		tw := &v1beta1.Twin{PropertyName: p.Name}
		if !t.reported.IsZero() {
			tw.Reported = &v1beta1.TwinProperty{Value: t.reported.String(), Metadata: meta(t.reportedAt, typ)}
		}
		if t.applied != "" {
			tw.ObservedDesired = &v1beta1.TwinProperty{Value: t.applied, Metadata: meta(t.appliedAt, typ)}
		}
		st.Twins = append(st.Twins, tw)
	}
	st.ReportCycle = minCycle.Milliseconds()
	return st
}

func meta(at time.Time, typ string) map[string]string {
	return map[string]string{"timestamp": strconv.FormatInt(at.UnixMilli(), 10), "type": typ}
}

func (r *runner) reportTwins(ctx context.Context) {
	st := r.status()
	if len(st.Twins) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
	defer cancel()
	_, err := r.m.edge.ReportDeviceStatus(cctx, &v1beta1.ReportDeviceStatusRequest{
		DeviceName:      r.dev.Name,
		DeviceNamespace: r.dev.Namespace,
		ReportedDevice:  st,
	})
	r.m.reportResult(ctx, err, r.log, "status")
	r.dropIfGone(ctx, err)
}

// dropIfGone stops the device when the edge says it has no such device: it was deleted while
// the edge could not tell this mapper (edgecore was down, say), and polling it is useless.
// Should the edge still have it, its next push starts it again.
func (r *runner) dropIfGone(ctx context.Context, err error) {
	if ctx.Err() != nil || status.Code(err) != codes.NotFound {
		return
	}
	r.log.Warn("the edge has no such device any more; stopping it", "err", err)
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	if e, ok := r.m.devices[key(r.dev.Namespace, r.dev.Name)]; ok && e.last == r {
		r.m.removeLocked(key(r.dev.Namespace, r.dev.Name))
	}
}

func (r *runner) setState(s string) {
	r.mu.Lock()
	changed := r.state != s
	r.state = s
	r.mu.Unlock()
	if changed {
		select {
		case r.stateChanged <- struct{}{}:
		default:
		}
	}
}

// stateLoop reports the device state when it changes and every stateCycle.
func (r *runner) stateLoop(ctx context.Context) {
	t := time.NewTicker(r.stateCycle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.stateChanged:
		}
		r.mu.Lock()
		s := r.state
		r.mu.Unlock()
		if s == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		_, err := r.m.edge.ReportDeviceStates(cctx, &v1beta1.ReportDeviceStatesRequest{
			DeviceName:      r.dev.Name,
			DeviceNamespace: r.dev.Namespace,
			State:           s,
		})
		cancel()
		r.m.reportResult(ctx, err, r.log, "state")
		r.dropIfGone(ctx, err)
	}
}

func (r *runner) enqueuePush(p *Property, v Value, at time.Time) {
	j := pushJob{push: p.Push, reading: Reading{
		Namespace:    r.dev.Namespace,
		DeviceName:   r.dev.Name,
		PropertyName: p.Name,
		Value:        v.String(),
		Type:         strings.ToLower(string(p.Type)),
		Timestamp:    at.UnixMilli(),
	}}
	select {
	case r.pushQ <- j:
	default:
		// A slow destination must not hold up polling: drop this reading.
		r.log.Debug("push queue full, reading dropped", "property", p.Name)
	}
}

// pushLoop sends queued readings; failures are logged when they start and when they end.
func (r *runner) pushLoop(ctx context.Context) {
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-r.pushQ:
			err := r.m.push.send(ctx, j)
			switch {
			case err != nil && ctx.Err() == nil && !failing:
				r.log.Warn("push failed", "property", j.reading.PropertyName, "err", err)
				failing = true
			case err == nil && failing:
				r.log.Info("push works again", "property", j.reading.PropertyName)
				failing = false
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// isUnavailable reports whether err means the edge is not there (restarting, gone).
func isUnavailable(err error) bool {
	return status.Code(err) == codes.Unavailable
}
