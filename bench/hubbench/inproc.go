package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/skerry-io/skerry/cloud/hub"
	"github.com/skerry-io/skerry/cloud/hub/queue"
	"github.com/skerry-io/skerry/cmd/edgesim/sim"
	"github.com/skerry-io/skerry/pkg/pki"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

// waitUntil polls cond every 2 ms until it holds (true) or limit passes (false).
func waitUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// startSim starts nodes simulated edges against r and waits (up to limit) until all are
// connected. stop ends them and waits.
func startSim(r *rig, ca *pki.CA, protocol string, nodes int, rate float64, limit time.Duration) (s *sim.Sim, stop func(), err error) {
	s, err = sim.New(sim.Config{Server: r.addr(protocol), Protocol: protocol, Nodes: nodes, CA: ca, Prefix: "bench", ConnectRate: rate})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	if !waitUntil(limit, func() bool { return s.ConnectedNow() == nodes && r.obs.count() == nodes }) {
		stop()
		return nil, nil, fmt.Errorf("only %d of %d nodes connected within %s", s.ConnectedNow(), nodes, limit)
	}
	return s, stop, nil
}

// podContent returns a pod-shaped JSON object of about size bytes.
func podContent(name string, size int) json.RawMessage {
	base := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q,"namespace":"default","uid":"u-%s","resourceVersion":"1"},"spec":{"nodeName":"bench-0","containers":[{"name":"c","image":"busybox"}]},"status":{"message":"`, name, name)
	pad := max(size-len(base)-3, 0)
	return json.RawMessage(base + strings.Repeat("x", pad) + `"}}`)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// throughput measures acked messages per second to one node: distinct keys are upserted as
// fast as the node's queue accepts them for --duration; acks are counted by the hub's queue.
func throughput(args []string) error {
	fs := flag.NewFlagSet("throughput", flag.ExitOnError)
	duration := fs.Duration("duration", 5*time.Second, "measuring window (bounded to 60s)")
	protocol := fs.String("protocol", transport.ProtocolWebSocket, "websocket or quic")
	size := fs.Int("size", 1024, "approximate content size of each message, bytes")
	maxKeys := fs.Int("max-keys", 10000, "node queue bound (hub queue MaxKeys; 10000 is the default)")
	_ = fs.Parse(args)
	*duration = min(*duration, time.Minute)

	ca, err := pki.NewCA(pki.CAConfig{CommonName: "hubbench-ca"})
	if err != nil {
		return err
	}
	// The hub's per-node send rate (default 200/s) would be the whole answer: lift it to
	// measure the session, transport and queue.
	r, err := startRig(ca, hub.Config{SendRate: 1e9, SendBurst: 1 << 20, Queue: queue.Options{MaxKeys: *maxKeys}}, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer func() { _ = r.stop() }()
	s, stopSim, err := startSim(r, ca, *protocol, 1, 0, 20*time.Second)
	if err != nil {
		return err
	}
	defer stopSim()
	node := s.NodeName(0)

	start := time.Now()
	deadline := start.Add(*duration)
	upserts, full := 0, 0
	for time.Now().Before(deadline) {
		name := fmt.Sprintf("p-%d", upserts)
		key := wire.Key{Namespace: "default", Type: wire.TypePod, Name: name}
		m := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: key.String()}, podContent(name, *size))
		err := r.hub.Upsert(node, key, queue.Version{UID: "u-" + name, ResourceVersion: "1"}, m)
		if errors.Is(err, queue.ErrFull) {
			full++
			time.Sleep(50 * time.Microsecond)
			continue
		}
		if err != nil {
			return err
		}
		upserts++
	}
	st, _ := r.hub.QueueStats(node)
	elapsed := time.Since(start)
	rep := s.Report()
	fmt.Printf("throughput protocol=%s size=%dB max-keys=%d window=%s\n", *protocol, *size, *maxKeys, elapsed.Round(time.Millisecond))
	fmt.Printf("  upserts accepted %d (ErrFull retries %d), hub acked %d, retries %d\n", upserts, full, st.Acked, st.Retries)
	fmt.Printf("  acked messages/s: %.0f\n", float64(st.Acked)/elapsed.Seconds())
	fmt.Printf("  ack latency (upsert → edge ack sent): p50 %.1f ms, p99 %.1f ms (%d samples)\n", ms(rep.AckLatencyP50), ms(rep.AckLatencyP99), rep.AckSamples)
	return nil
}

// fanout measures the time from upserting one object for each of --nodes connected nodes
// until every node's queue has its ack.
func fanout(args []string) error {
	fs := flag.NewFlagSet("fanout", flag.ExitOnError)
	nodes := fs.Int("nodes", 1000, "nodes")
	protocol := fs.String("protocol", transport.ProtocolWebSocket, "websocket or quic")
	rate := fs.Float64("connect-rate", 500, "connects per second while setting up")
	_ = fs.Parse(args)
	if _, _, err := sim.RaiseNoFileLimit(); err != nil {
		return err
	}
	ca, err := pki.NewCA(pki.CAConfig{CommonName: "hubbench-ca"})
	if err != nil {
		return err
	}
	r, err := startRig(ca, hub.Config{MaxNodes: *nodes + 10}, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer func() { _ = r.stop() }()
	t0 := time.Now()
	s, stopSim, err := startSim(r, ca, *protocol, *nodes, *rate, 2*time.Minute)
	if err != nil {
		return err
	}
	defer stopSim()
	setup := time.Since(t0)

	key := wire.Key{Namespace: "default", Type: wire.TypeConfigMap, Name: "fanout"}
	content := json.RawMessage(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fanout","namespace":"default","uid":"u-fanout","resourceVersion":"1"},"data":{"k":"v"}}`)
	v := queue.Version{UID: "u-fanout", ResourceVersion: "1"}
	start := time.Now()
	for i := range *nodes {
		m := wire.NewMessage(wire.Route{Source: "edgecontroller", Group: wire.GroupResource, Operation: wire.OpUpdate, Resource: key.String()}, content)
		if err := r.hub.Upsert(s.NodeName(i), key, v, m); err != nil {
			return err
		}
	}
	queued := time.Since(start)
	next := 0 // nodes before next are known to have acked
	ok := waitUntil(30*time.Second, func() bool {
		for ; next < *nodes; next++ {
			if st, _ := r.hub.QueueStats(s.NodeName(next)); st.Acked < 1 {
				return false
			}
		}
		return true
	})
	all := time.Since(start)
	if !ok {
		return fmt.Errorf("only %d of %d nodes acked within 30s", next, *nodes)
	}
	rep := s.Report()
	fmt.Printf("fanout protocol=%s nodes=%d (all connected in %s, connect p50 %.1f ms p99 %.1f ms)\n", *protocol, *nodes, setup.Round(time.Millisecond), ms(rep.ConnectP50), ms(rep.ConnectP99))
	fmt.Printf("  upserts queued in %.1f ms; all %d acked after %.1f ms\n", ms(queued), *nodes, ms(all))
	fmt.Printf("  per-node latency (upsert → edge ack sent): p50 %.1f ms, p99 %.1f ms\n", ms(rep.AckLatencyP50), ms(rep.AckLatencyP99))
	return nil
}
