package sim

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is what a simulation measured. Durations are in the JSON as nanoseconds.
type Report struct {
	Nodes          int              `json:"nodes"`
	Connected      int              `json:"connected"`     // nodes that connected at least once
	ConnectedNow   int              `json:"connected_now"` // nodes with a session when the report was taken
	Failed         int              `json:"failed"`        // nodes that never connected
	ConnectP50     time.Duration    `json:"connect_p50"`   // dial + TLS + upgrade, first connects and reconnects
	ConnectP99     time.Duration    `json:"connect_p99"`
	ConnectMax     time.Duration    `json:"connect_max"`
	Received       uint64           `json:"received"` // downstream messages (keepalives of the hub excluded)
	Acked          uint64           `json:"acked"`    // acks sent
	Elapsed        time.Duration    `json:"elapsed"`
	AckedPerSecond float64          `json:"acked_per_second"`
	AckLatencyP50  time.Duration    `json:"ack_latency_p50"` // message header.timestamp → our ack written
	AckLatencyP99  time.Duration    `json:"ack_latency_p99"`
	AckSamples     int              `json:"ack_samples"`
	Reconnects     uint64           `json:"reconnects"`
	Errors         map[string]int64 `json:"errors"`                 // by kind: dial, read, write, inventory, ...
	Registered     int              `json:"registered,omitempty"`   // nodes whose registration the hub accepted (Config.Register)
	ApplyErrors    uint64           `json:"apply_errors,omitempty"` // downstream messages the store refused (Config.StoreDir)
	// Traffic is per resource type (Config.CountBytes).
	Traffic map[string]Traffic `json:"traffic,omitempty"`
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the nearest-rank method,
// and 0 for an empty slice.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// nearest rank: the smallest value with at least p% of the samples at or below it.
	rank := int(float64(n)*p/100 + 0.999999999)
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

func summarize(samples []time.Duration) (p50, p99, mx time.Duration) {
	if len(samples) == 0 {
		return 0, 0, 0
	}
	slices.Sort(samples)
	return Percentile(samples, 50), Percentile(samples, 99), samples[len(samples)-1]
}

// WriteText prints r for people.
func (r Report) WriteText(w io.Writer) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintf(w, "nodes:            %d (connected %d, connected now %d, failed %d)\n", r.Nodes, r.Connected, r.ConnectedNow, r.Failed)
	fmt.Fprintf(w, "connect time:     p50 %s, p99 %s, max %s\n", ms(r.ConnectP50), ms(r.ConnectP99), ms(r.ConnectMax))
	fmt.Fprintf(w, "messages:         received %d, acked %d in %s (%.0f acked/s)\n", r.Received, r.Acked, r.Elapsed.Round(time.Millisecond), r.AckedPerSecond)
	fmt.Fprintf(w, "ack latency:      p50 %s, p99 %s (%d samples; header.timestamp has ms resolution)\n", ms(r.AckLatencyP50), ms(r.AckLatencyP99), r.AckSamples)
	fmt.Fprintf(w, "reconnects:       %d\n", r.Reconnects)
	if r.Registered > 0 || r.ApplyErrors > 0 {
		fmt.Fprintf(w, "registered:       %d nodes; apply errors %d\n", r.Registered, r.ApplyErrors)
	}
	types := slices.Sorted(maps.Keys(r.Traffic))
	for _, t := range types {
		fmt.Fprintf(w, "traffic %-14s %d messages, %d bytes\n", t+":", r.Traffic[t].Messages, r.Traffic[t].Bytes)
	}
	kinds := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s=%d", k, r.Errors[k]))
	}
	if len(parts) == 0 {
		parts = append(parts, "none")
	}
	fmt.Fprintf(w, "errors:           %s\n", strings.Join(parts, " "))
}
