package app

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// metrics writes the Prometheus text exposition format by hand: a handful of counters do not
// justify the client library and its dependencies.
func (a *App) metrics(w http.ResponseWriter, _ *http.Request) {
	var b strings.Builder
	b.WriteString("# HELP skerry_cloudcore_connected_nodes Edge nodes with a session.\n")
	b.WriteString("# TYPE skerry_cloudcore_connected_nodes gauge\n")
	fmt.Fprintf(&b, "skerry_cloudcore_connected_nodes %d\n", len(a.nodes.list()))

	b.WriteString("# HELP skerry_cloudcore_edge_nodes Edge nodes in the node graph.\n")
	b.WriteString("# TYPE skerry_cloudcore_edge_nodes gauge\n")
	fmt.Fprintf(&b, "skerry_cloudcore_edge_nodes %d\n", len(a.ctrl.Graph().Nodes()))

	b.WriteString("# HELP skerry_cloudcore_authz_denied_total Upstream messages refused by node isolation, by class.\n")
	b.WriteString("# TYPE skerry_cloudcore_authz_denied_total counter\n")
	denials := a.authz.Denials()
	for _, c := range slices.Sorted(maps.Keys(denials)) {
		fmt.Fprintf(&b, "skerry_cloudcore_authz_denied_total{class=%q} %d\n", c, denials[c])
	}

	b.WriteString("# HELP skerry_cloudcore_upstream_messages_total Upstream messages by kind and outcome.\n")
	b.WriteString("# TYPE skerry_cloudcore_upstream_messages_total counter\n")
	stats := a.upstream.Stats()
	for _, k := range slices.Sorted(maps.Keys(stats)) {
		c := stats[k]
		fmt.Fprintf(&b, "skerry_cloudcore_upstream_messages_total{kind=%q,outcome=\"handled\"} %d\n", k, c.Handled)
		fmt.Fprintf(&b, "skerry_cloudcore_upstream_messages_total{kind=%q,outcome=\"failed\"} %d\n", k, c.Failed)
		fmt.Fprintf(&b, "skerry_cloudcore_upstream_messages_total{kind=%q,outcome=\"transient\"} %d\n", k, c.Transient)
	}

	b.WriteString("# HELP skerry_cloudcore_devices Devices bound to each edge node.\n")
	b.WriteString("# TYPE skerry_cloudcore_devices gauge\n")
	devices := a.ctrl.Graph().DeviceCounts()
	for _, n := range slices.Sorted(maps.Keys(devices)) {
		fmt.Fprintf(&b, "skerry_cloudcore_devices{node=%q} %d\n", n, devices[n])
	}

	b.WriteString("# HELP skerry_cloudcore_mqtt_uploads_total MQTT messages edge apps published for the cloud, by node.\n")
	b.WriteString("# TYPE skerry_cloudcore_mqtt_uploads_total counter\n")
	uploads := a.upstream.Uploads()
	for _, n := range slices.Sorted(maps.Keys(uploads)) {
		fmt.Fprintf(&b, "skerry_cloudcore_mqtt_uploads_total{node=%q} %d\n", n, uploads[n])
	}

	ts := a.podTokens.Stats()
	b.WriteString("# HELP skerry_cloudcore_tokens_issued_total Service-account tokens issued for edge pods.\n")
	b.WriteString("# TYPE skerry_cloudcore_tokens_issued_total counter\n")
	fmt.Fprintf(&b, "skerry_cloudcore_tokens_issued_total %d\n", ts.Issued)
	b.WriteString("# HELP skerry_cloudcore_tokens_failures_total Failed TokenRequests.\n")
	b.WriteString("# TYPE skerry_cloudcore_tokens_failures_total counter\n")
	fmt.Fprintf(&b, "skerry_cloudcore_tokens_failures_total %d\n", ts.Failures)

	b.WriteString("# HELP skerry_cloudcore_sync_queue_length Nodes waiting for a reconcile.\n")
	b.WriteString("# TYPE skerry_cloudcore_sync_queue_length gauge\n")
	fmt.Fprintf(&b, "skerry_cloudcore_sync_queue_length %d\n", a.ctrl.QueueLen())

	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(b.String()))
}
