package transport

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// One direction, edge → cloud, ~1 KB content per message:
//
//	go test ./pkg/transport -run '^$' -bench Throughput -benchtime 3s
func BenchmarkWebSocketThroughput(b *testing.B) { benchThroughput(b, transports()[0]) }

func BenchmarkQUICThroughput(b *testing.B) { benchThroughput(b, transports()[1]) }

func benchThroughput(b *testing.B, tc transportCase) {
	f := newPKI(b)
	var got atomic.Int64
	done := make(chan struct{}, 1)
	var want atomic.Int64
	addr, _ := startServer(b, tc, f, Options{}, func(ctx context.Context, c Conn) {
		for {
			if _, err := c.Read(ctx); err != nil {
				return
			}
			if got.Add(1) == want.Load() {
				done <- struct{}{}
			}
		}
	})
	c := mustDial(b, tc, addr, f)
	m := testMsg(1, strings.Repeat("k", 1024))
	ctx := context.Background()
	want.Store(int64(b.N))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := c.Write(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("only %d of %d messages arrived", got.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
