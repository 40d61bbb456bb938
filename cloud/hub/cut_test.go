package hub

import (
	"fmt"
	"testing"
	"time"

	"github.com/skerry-io/skerry/cloud/hub/queue"
	"github.com/skerry-io/skerry/pkg/transport"
	"github.com/skerry-io/skerry/pkg/wire"
)

// committedEdge models the edge's side of delivery: the store and the ids it committed.
// edge/hub applies every message it receives and acknowledges it after the commit; it keeps
// no list of ids, because the store's upsert makes applying the same message again a no-op.
// Here the model keeps the ids so the test can tell a redelivery from a second application:
// "applied" counts first commits per key and version, "redelivered" counts messages whose id
// was already committed (those the edge answers with an ack without changing anything).
type committedEdge struct {
	committed   map[string]string // msg id → "key@version"
	applied     map[string]int    // "key@version" → first commits
	state       map[string]string // key → resourceVersion held
	acked       map[string]bool   // msg ids the edge acknowledged (and the hub counted)
	redelivered map[string]int    // msg id → deliveries after the first commit
}

func newCommittedEdge() *committedEdge {
	return &committedEdge{committed: map[string]string{}, applied: map[string]int{}, state: map[string]string{},
		acked: map[string]bool{}, redelivered: map[string]int{}}
}

// commit applies m unless its id was committed before; it reports whether it was new.
func (c *committedEdge) commit(m *wire.Message) bool {
	id := m.Header.ID
	kv := m.Route.Resource + "@" + m.Header.ResourceVersion
	if prev, ok := c.committed[id]; ok {
		if prev != kv {
			panic(fmt.Sprintf("message id %s reused for %s and %s", id, prev, kv))
		}
		c.redelivered[id]++
		return false
	}
	c.committed[id] = kv
	c.applied[kv]++
	c.state[m.Route.Resource] = m.Header.ResourceVersion
	return true
}

// TestEdgeCutsConnectionMidStream: the hub is sending a burst of 200 keys; the edge commits
// and acknowledges 50, commits 10 more without acknowledging them (a crash between commit and
// ack), and closes its connection while the hub is still sending. Ten keys get a newer version
// while the edge is away. After the edge reconnects:
//   - every key reaches the edge at its newest version and is acknowledged; the hub's queue is
//     empty;
//   - a message the hub saw acknowledged is never sent again;
//   - the only messages delivered twice are ones the edge had not acknowledged (at-least-once),
//     and they carry the same id and version as before, so an edge that checks the id (or, as
//     edge/hub does, upserts the same object again) changes nothing: no key and version is
//     applied twice.
func TestEdgeCutsConnectionMidStream(t *testing.T) {
	for _, proto := range []string{transport.ProtocolWebSocket, transport.ProtocolQUIC} {
		t.Run(proto, func(t *testing.T) { testEdgeCutsConnectionMidStream(t, proto) })
	}
}

func testEdgeCutsConnectionMidStream(t *testing.T, proto string) {
	const (
		keys     = 200
		ackFirst = 50
		noAck    = 10
		node     = "edge-1"
	)
	// 100 messages per second after a burst of 10: the burst takes about two seconds, so the
	// edge cuts the connection while the hub is still sending.
	f := newFixture(t, Config{SendRate: 100, SendBurst: 10, Queue: queue.Options{AckTimeout: 5 * time.Second}})
	e := f.dial(node, proto, false)
	waitFor(t, "session", func() bool { return f.hub.Connected(node) })

	newest := map[string]string{} // key → newest resourceVersion
	for i := range keys {
		k := podKey(fmt.Sprintf("p-%03d", i))
		upsert(t, f.hub, node, k, queue.Version{UID: "u-" + k.Name, ResourceVersion: "1"})
		newest[k.String()] = "1"
	}

	edge := newCommittedEdge()
	for n := 0; n < ackFirst+noAck; n++ {
		m := e.next()
		if m.Route.Operation == wire.OpResponse || m.Route.Operation == wire.OpError {
			t.Fatalf("unexpected reply %s", describe(m))
		}
		if !edge.commit(m) {
			t.Fatalf("message %s %s delivered twice on one connection", m.Header.ID, describe(m))
		}
		if n < ackFirst {
			e.send(m.Ack())
			edge.acked[m.Header.ID] = true
		}
	}
	// The acks must have reached the hub before the cut: an ack lost with the connection is
	// just a message resent later, which the assertions below would count against the hub.
	waitFor(t, "first acks", func() bool {
		s, _ := f.hub.QueueStats(node)
		return s.Acked == ackFirst
	})
	s, _ := f.hub.QueueStats(node)
	if s.Sent >= keys {
		t.Fatalf("the hub had sent all %d messages before the cut (stats %+v): the test proves nothing", keys, s)
	}
	if err := e.conn.Close("edge crashed"); err != nil {
		t.Logf("close: %v", err)
	}
	waitFor(t, "hub notices the cut", func() bool { return !f.hub.Connected(node) })

	// Newer versions of ten keys while the edge is away; some of them were already committed.
	for i := 0; i < keys; i += keys / 10 {
		k := podKey(fmt.Sprintf("p-%03d", i))
		upsert(t, f.hub, node, k, queue.Version{UID: "u-" + k.Name, ResourceVersion: "2"})
		newest[k.String()] = "2"
	}

	e2 := f.dial(node, proto, false)
	settled := func() bool {
		for k, v := range newest {
			if edge.state[k] != v {
				return false
			}
		}
		s, _ := f.hub.QueueStats(node)
		return s.Queued == 0 && s.InFlight == 0
	}
	deadline := time.After(20 * time.Second)
	for !settled() {
		select {
		case m, ok := <-e2.msgs:
			if !ok {
				t.Fatal("second connection closed")
			}
			if m.Route.Operation == wire.OpResponse || m.Route.Operation == wire.OpError {
				t.Fatalf("unexpected reply %s", describe(m))
			}
			if edge.acked[m.Header.ID] {
				t.Fatalf("message %s (%s) resent although the hub had its ack", m.Header.ID, describe(m))
			}
			edge.commit(m)
			e2.send(m.Ack())
			edge.acked[m.Header.ID] = true
		case <-time.After(20 * time.Millisecond): // look at the queue again
		case <-deadline:
			s, _ := f.hub.QueueStats(node)
			t.Fatalf("not settled: queue %+v, %d keys committed", s, len(edge.state))
		}
	}

	for kv, n := range edge.applied {
		if n != 1 {
			t.Errorf("%s applied %d times", kv, n)
		}
	}
	for id, n := range edge.redelivered {
		if n != 1 {
			t.Errorf("message %s (%s) redelivered %d times after the reconnect, want at most once", id, edge.committed[id], n)
		}
	}
	if len(edge.redelivered) > noAck {
		t.Errorf("%d messages redelivered, want at most the %d committed without ack", len(edge.redelivered), noAck)
	}
	for k, v := range newest {
		if edge.state[k] != v {
			t.Errorf("%s at version %q, want %q", k, edge.state[k], v)
		}
	}
	t.Logf("%d first commits, %d redelivered (ids committed but not acknowledged before the cut)",
		len(edge.committed), len(edge.redelivered))
}
