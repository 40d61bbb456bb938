package server

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"
)

// CRI log streams and tags (the CRI log format: "<RFC3339Nano> <stream> <tag> <text>").
const (
	streamStdout = "stdout"
	streamStderr = "stderr"
	tagPartial   = "P"
	tagDelimiter = ':'
)

// criLine is one parsed line of a CRI log file.
type criLine struct {
	ts      time.Time
	stream  string
	partial bool
	// content excludes the line's newline; it aliases the parsed buffer.
	content []byte
}

// parseCRILine parses one raw line (with or without its trailing newline) as the kubelet does:
// tags after the stream are ':'-separated and only the first one (F or P) matters, so newer
// runtimes' extra tags are accepted.
func parseCRILine(line []byte) (criLine, error) {
	var l criLine
	line = bytes.TrimSuffix(line, []byte{'\n'})
	i := bytes.IndexByte(line, ' ')
	if i < 0 {
		return l, errors.New("timestamp is not found")
	}
	ts, err := time.Parse(time.RFC3339Nano, string(line[:i]))
	if err != nil {
		return l, fmt.Errorf("unexpected timestamp: %w", err)
	}
	l.ts = ts
	line = line[i+1:]
	i = bytes.IndexByte(line, ' ')
	if i < 0 {
		return l, errors.New("stream type is not found")
	}
	switch string(line[:i]) {
	case streamStdout:
		l.stream = streamStdout
	case streamStderr:
		l.stream = streamStderr
	default:
		return l, fmt.Errorf("unexpected stream type %q", line[:i])
	}
	line = line[i+1:]
	i = bytes.IndexByte(line, ' ')
	var tags []byte
	if i < 0 {
		// "ts stream F" with no text: accept as an empty line.
		tags, line = line, nil
	} else {
		tags, line = line[:i], line[i+1:]
	}
	if j := bytes.IndexByte(tags, tagDelimiter); j >= 0 {
		tags = tags[:j]
	}
	if len(tags) == 0 {
		return l, errors.New("log tag is not found")
	}
	l.partial = string(tags) == tagPartial
	l.content = line
	return l, nil
}

// logOptions are the kubelet's containerLogs query parameters (v1.PodLogOptions).
type logOptions struct {
	follow     bool
	previous   bool
	timestamps bool
	tailLines  int64 // < 0: all
	since      time.Time
	limitBytes int64  // ≤ 0: unlimited
	stream     string // "" for both, else streamStdout or streamStderr
}

// parseLogOptions validates the query, answering the error to show a 400 with.
func parseLogOptions(q url.Values, now time.Time) (logOptions, error) {
	o := logOptions{tailLines: -1}
	var err error
	if o.follow, err = boolParam(q, "follow"); err != nil {
		return o, err
	}
	if o.previous, err = boolParam(q, "previous"); err != nil {
		return o, err
	}
	if o.timestamps, err = boolParam(q, "timestamps"); err != nil {
		return o, err
	}
	// "tail" is the kubelet's legacy spelling; "all" means no limit.
	tail := q.Get("tailLines")
	if tail == "" {
		if t := q.Get("tail"); t != "" && t != "all" {
			tail = t
		}
	}
	if tail != "" {
		n, err := strconv.ParseInt(tail, 10, 64)
		if err != nil || n < 0 {
			return o, fmt.Errorf("tailLines: must be a non-negative integer, got %q", tail)
		}
		o.tailLines = n
	}
	if v := q.Get("limitBytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("limitBytes: must be a positive integer, got %q", v)
		}
		o.limitBytes = n
	}
	ss, st := q.Get("sinceSeconds"), q.Get("sinceTime")
	if ss != "" && st != "" {
		return o, errors.New("at most one of sinceTime or sinceSeconds may be specified")
	}
	if ss != "" {
		n, err := strconv.ParseInt(ss, 10, 64)
		if err != nil || n < 1 {
			return o, fmt.Errorf("sinceSeconds: must be a positive integer, got %q", ss)
		}
		// Beyond a century is "everything"; capping keeps the Duration from overflowing.
		if n > math.MaxInt64/int64(time.Second) {
			n = math.MaxInt64 / int64(time.Second)
		}
		o.since = now.Add(-time.Duration(n) * time.Second)
	}
	if st != "" {
		t, err := time.Parse(time.RFC3339Nano, st)
		if err != nil {
			return o, fmt.Errorf("sinceTime: must be an RFC 3339 time, got %q", st)
		}
		o.since = t
	}
	switch v := q.Get("stream"); v {
	case "", "All":
	case "Stdout":
		o.stream = streamStdout
	case "Stderr":
		o.stream = streamStderr
	default:
		return o, fmt.Errorf("stream: must be All, Stdout or Stderr, got %q", v)
	}
	return o, nil
}

// boolParam parses a boolean query parameter; absent is false.
func boolParam(q url.Values, name string) (bool, error) {
	v, ok := q[name]
	if !ok || len(v) == 0 || v[0] == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v[0])
	if err != nil {
		return false, fmt.Errorf("%s: must be true or false, got %q", name, v[0])
	}
	return b, nil
}
