package server

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
)

// serveResourceMetrics answers /metrics/resource in the Prometheus text format, with the
// kubelet's metric names, which metrics-server reads.
func (s *Server) serveResourceMetrics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.requestContext(r)
	defer cancel()
	var b bytes.Buffer
	c, err := s.collect(ctx)
	if err != nil {
		s.log.Debug("resource metrics", "err", err)
		header(&b, "scrape_error", "gauge", "1 if there was an error while getting container metrics, 0 otherwise")
		b.WriteString("scrape_error 1\n")
		writeMetrics(w, b.Bytes())
		return
	}
	sum := &c.summary

	header(&b, "container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the container in core-seconds")
	for _, p := range sum.Pods {
		for _, ct := range p.Containers {
			if ct.CPU != nil && ct.CPU.UsageCoreNanoSeconds != nil {
				sample(&b, "container_cpu_usage_seconds_total", containerLabels(ct.Name, p.PodRef),
					float64(*ct.CPU.UsageCoreNanoSeconds)/1e9, ct.CPU.Time.UnixMilli())
			}
		}
	}
	header(&b, "container_memory_working_set_bytes", "gauge", "Current working set of the container in bytes")
	for _, p := range sum.Pods {
		for _, ct := range p.Containers {
			if ct.Memory != nil && ct.Memory.WorkingSetBytes != nil {
				sample(&b, "container_memory_working_set_bytes", containerLabels(ct.Name, p.PodRef),
					float64(*ct.Memory.WorkingSetBytes), ct.Memory.Time.UnixMilli())
			}
		}
	}
	header(&b, "container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds")
	for _, p := range sum.Pods {
		for _, ct := range p.Containers {
			if !ct.StartTime.IsZero() {
				sample(&b, "container_start_time_seconds", containerLabels(ct.Name, p.PodRef),
					float64(ct.StartTime.UnixNano())/1e9, ct.StartTime.UnixMilli())
			}
		}
	}
	header(&b, "node_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the node in core-seconds")
	if n := sum.Node.CPU; n != nil && n.UsageCoreNanoSeconds != nil {
		sample(&b, "node_cpu_usage_seconds_total", "", float64(*n.UsageCoreNanoSeconds)/1e9, n.Time.UnixMilli())
	}
	header(&b, "node_memory_working_set_bytes", "gauge", "Current working set of the node in bytes")
	if n := sum.Node.Memory; n != nil && n.WorkingSetBytes != nil {
		sample(&b, "node_memory_working_set_bytes", "", float64(*n.WorkingSetBytes), n.Time.UnixMilli())
	}
	header(&b, "pod_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed by the pod in core-seconds")
	for _, p := range sum.Pods {
		if p.CPU != nil && p.CPU.UsageCoreNanoSeconds != nil {
			sample(&b, "pod_cpu_usage_seconds_total", podLabels(p.PodRef), float64(*p.CPU.UsageCoreNanoSeconds)/1e9, p.CPU.Time.UnixMilli())
		}
	}
	header(&b, "pod_memory_working_set_bytes", "gauge", "Current working set of the pod in bytes")
	for _, p := range sum.Pods {
		if p.Memory != nil && p.Memory.WorkingSetBytes != nil {
			sample(&b, "pod_memory_working_set_bytes", podLabels(p.PodRef), float64(*p.Memory.WorkingSetBytes), p.Memory.Time.UnixMilli())
		}
	}
	header(&b, "scrape_error", "gauge", "1 if there was an error while getting container metrics, 0 otherwise")
	if c.scrapeError {
		b.WriteString("scrape_error 1\n")
	} else {
		b.WriteString("scrape_error 0\n")
	}
	writeMetrics(w, b.Bytes())
}

func writeMetrics(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func header(b *bytes.Buffer, name, typ, help string) {
	b.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

// sample writes one line with a millisecond timestamp (metrics-server uses it as the
// sample's time).
func sample(b *bytes.Buffer, name, labels string, v float64, ms int64) {
	b.WriteString(name)
	b.WriteString(labels)
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	b.WriteByte(' ')
	b.WriteString(strconv.FormatInt(ms, 10))
	b.WriteByte('\n')
}

func containerLabels(container string, p PodReference) string {
	return `{container="` + escapeLabel(container) + `",namespace="` + escapeLabel(p.Namespace) + `",pod="` + escapeLabel(p.Name) + `"}`
}

func podLabels(p PodReference) string {
	return `{namespace="` + escapeLabel(p.Namespace) + `",pod="` + escapeLabel(p.Name) + `"}`
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(v string) string { return labelEscaper.Replace(v) }
