package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const sampleLog = `2024-01-01T00:00:00.000000001Z stdout F line one
2024-01-01T00:00:01Z stderr P err 
2024-01-01T00:00:02Z stdout F line two
2024-01-01T00:00:03Z stderr F joined
2024-01-01T00:00:04Z stdout F 
2024-01-01T00:00:05Z stdout F:x last
`

func logsServer(t *testing.T, content string, mod func(*Config)) (*fakeRuntime, string) {
	t.Helper()
	f := newFakeRuntime()
	f.addContainer(t, "ns", "web", "uid-1", "app", "c1", 0, runtimeapi.ContainerState_CONTAINER_EXITED, content)
	_, ts := newTestServer(t, f, mod, testPod("ns", "web", "uid-1", "app"))
	return f, ts.URL + "/containerLogs/ns/web/app"
}

func TestLogs(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 10, 0, time.UTC)
	_, base := logsServer(t, sampleLog, func(c *Config) { c.Now = func() time.Time { return now } })
	for _, tc := range []struct {
		query, want string
	}{
		{"", "line one\nline two\nerr joined\n\nlast\n"},
		{"?timestamps=true", "2024-01-01T00:00:00.000000001Z line one\n2024-01-01T00:00:02Z line two\n2024-01-01T00:00:01Z err joined\n2024-01-01T00:00:04Z \n2024-01-01T00:00:05Z last\n"},
		{"?tailLines=2", "\nlast\n"},
		{"?tailLines=3", "err joined\n\nlast\n"},
		{"?tailLines=0", ""},
		{"?tailLines=100", "line one\nline two\nerr joined\n\nlast\n"},
		{"?tail=all", "line one\nline two\nerr joined\n\nlast\n"},
		{"?tail=1", "last\n"},
		{"?sinceTime=2024-01-01T00:00:02Z", "line two\n\nlast\n"},
		{"?sinceSeconds=7", "\nlast\n"},                       // since 00:00:03; a line has its first chunk's time
		{"?sinceSeconds=9", "line two\nerr joined\n\nlast\n"}, // since 00:00:01
		{"?limitBytes=12", "line one\nlin"},
		{"?stream=Stderr", "err joined\n"},
		{"?stream=Stdout&tailLines=1", "last\n"},
		{"?stream=Stderr&tailLines=1", "err joined\n"},
		{"?follow=true", "line one\nline two\nerr joined\n\nlast\n"}, // exited: ends at the end
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, body := get(t, base+tc.query)
			if code != http.StatusOK || body != tc.want {
				t.Fatalf("code %d body %q, want %q", code, body, tc.want)
			}
		})
	}
}

func TestLogsUnterminatedPartial(t *testing.T) {
	_, base := logsServer(t, "2024-01-01T00:00:00Z stdout F a\n2024-01-01T00:00:01Z stdout P b\n2024-01-01T00:00:02Z stdout F c", nil)
	// The last raw line has no newline: it is still read; a trailing partial is written as is.
	if code, body := get(t, base); code != 200 || body != "a\nbc\n" {
		t.Fatalf("got %d %q", code, body)
	}
	_, base = logsServer(t, "2024-01-01T00:00:00Z stdout F a\n2024-01-01T00:00:01Z stdout P b\n", nil)
	if code, body := get(t, base+"?tailLines=1"); code != 200 || body != "b" {
		t.Fatalf("got %d %q", code, body)
	}
}

func TestLogsTailLargeFile(t *testing.T) {
	var b strings.Builder
	for i := range 5000 {
		if i%7 == 0 {
			fmt.Fprintf(&b, "2024-01-01T00:00:00Z stdout P %05d-\n", i)
		}
		fmt.Fprintf(&b, "2024-01-01T00:00:00Z stdout F line %05d\n", i)
		if i%11 == 0 {
			b.WriteString("garbage that is not a CRI line\n")
		}
	}
	_, base := logsServer(t, b.String(), nil)
	for _, n := range []int{1, 3, 777, 4999, 5000, 6000} {
		_, body := get(t, fmt.Sprintf("%s?tailLines=%d", base, n))
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		want := min(n, 5000)
		if len(lines) != want {
			t.Fatalf("tail %d: %d lines", n, len(lines))
		}
		if last := lines[len(lines)-1]; last != "line 04999" {
			t.Fatalf("tail %d: last %q", n, last)
		}
		first := 5000 - want
		wantFirst := fmt.Sprintf("line %05d", first)
		if first%7 == 0 {
			wantFirst = fmt.Sprintf("%05d-line %05d", first, first)
		}
		if lines[0] != wantFirst {
			t.Fatalf("tail %d: first %q, want %q", n, lines[0], wantFirst)
		}
	}
}

func TestLogsPrevious(t *testing.T) {
	f := newFakeRuntime()
	f.addContainer(t, "ns", "web", "uid-1", "app", "old", 0, runtimeapi.ContainerState_CONTAINER_EXITED, "2024-01-01T00:00:00Z stdout F old\n")
	f.addContainer(t, "ns", "web", "uid-1", "app", "new", 1, runtimeapi.ContainerState_CONTAINER_RUNNING, "2024-01-01T00:00:00Z stdout F new\n")
	f.addContainer(t, "ns", "web", "uid-0", "app", "otherpod", 5, runtimeapi.ContainerState_CONTAINER_EXITED, "2024-01-01T00:00:00Z stdout F other\n")
	f.addContainer(t, "ns", "web", "uid-1", "side", "side", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, "")
	_, ts := newTestServer(t, f, nil, testPod("ns", "web", "uid-1", "app", "side"))
	base := ts.URL + "/containerLogs/ns/web/"
	if code, body := get(t, base+"app"); code != 200 || body != "new\n" {
		t.Fatalf("current: %d %q", code, body)
	}
	if code, body := get(t, base+"app?previous=true"); code != 200 || body != "old\n" {
		t.Fatalf("previous: %d %q", code, body)
	}
	code, body := get(t, base+"side?previous=true")
	if code != http.StatusBadRequest || !strings.Contains(body, `previous terminated container \"side\" in pod \"web\" not found`) {
		t.Fatalf("no previous: %d %s", code, body)
	}
}

func TestLogsErrors(t *testing.T) {
	f := newFakeRuntime()
	f.addContainer(t, "ns", "web", "", "app", "c1", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, "")
	_, ts := newTestServer(t, f, nil, testPod("ns", "web", "", "app", "notyet"))
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"/containerLogs/ns/nope/app", 404, `pod "nope" does not exist`},
		{"/containerLogs/other/web/app", 404, `pod "web" does not exist`},
		{"/containerLogs/ns/web/zzz", 404, `container "zzz" not found in pod "web"`},
		{"/containerLogs/ns/web/notyet", 400, `container "notyet" in pod "web" is waiting to start`},
		{"/containerLogs/ns/web", 404, "could not find"},
		{"/containerLogs/ns/web/app/extra", 404, "could not find"},
		{"/containerLogs/NS/web/app", 400, "invalid namespace"},
		{"/containerLogs/ns/web/app?tailLines=-1", 400, "tailLines"},
		{"/containerLogs/ns/web/app?tailLines=abc", 400, "tailLines"},
		{"/containerLogs/ns/web/app?tail=x", 400, "tailLines"},
		{"/containerLogs/ns/web/app?limitBytes=0", 400, "limitBytes"},
		{"/containerLogs/ns/web/app?sinceSeconds=0", 400, "sinceSeconds"},
		{"/containerLogs/ns/web/app?sinceTime=yesterday", 400, "sinceTime"},
		{"/containerLogs/ns/web/app?sinceTime=2024-01-01T00:00:00Z&sinceSeconds=4", 400, "at most one"},
		{"/containerLogs/ns/web/app?follow=maybe", 400, "follow"},
		{"/containerLogs/ns/web/app?stream=both", 400, "stream"},
		{"/nothing", 404, "could not find"},
	} {
		code, body := get(t, ts.URL+tc.path)
		var st metav1.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("%s: not a Status: %q", tc.path, body)
		}
		if code != tc.code || int(st.Code) != tc.code || st.Kind != "Status" || !strings.Contains(st.Message, tc.msg) {
			t.Errorf("%s: %d %+v, want %d %q", tc.path, code, st, tc.code, tc.msg)
		}
	}
	resp, err := http.Post(ts.URL+"/containerLogs/ns/web/app", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST logs: %d", resp.StatusCode)
	}
}

// readLine reads one line within a deadline.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	c := make(chan res, 1)
	go func() { s, err := r.ReadString('\n'); c <- res{s, err} }()
	select {
	case v := <-c:
		if v.err != nil {
			t.Fatalf("read: %v (%q)", v.err, v.s)
		}
		return v.s
	case <-time.After(5 * time.Second):
		t.Fatal("no line within 5s")
		return ""
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestLogsFollow(t *testing.T) {
	f := newFakeRuntime()
	path := f.addContainer(t, "ns", "web", "", "app", "c1", 0, runtimeapi.ContainerState_CONTAINER_RUNNING,
		"2024-01-01T00:00:00Z stdout F first\n")
	_, ts := newTestServer(t, f, nil, testPod("ns", "web", "", "app"))
	resp, err := http.Get(ts.URL + "/containerLogs/ns/web/app?follow=true&timestamps=1")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	r := bufio.NewReader(resp.Body)
	if l := readLine(t, r); l != "2024-01-01T00:00:00Z first\n" {
		t.Fatalf("got %q", l)
	}
	// A line written in pieces, and a raw line written in two writes.
	appendFile(t, path, "2024-01-01T00:00:01Z stdout P sec")
	appendFile(t, path, "ond \n2024-01-01T00:00:02Z stdout F line\n")
	if l := readLine(t, r); l != "2024-01-01T00:00:01Z second line\n" {
		t.Fatalf("got %q", l)
	}
	// Rotation: the file is renamed away and a new one takes its place.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("2024-01-01T00:00:03Z stderr F rotated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l := readLine(t, r); l != "2024-01-01T00:00:03Z rotated\n" {
		t.Fatalf("got %q", l)
	}
	// Truncation in place: read from the start again.
	if err := os.WriteFile(path, []byte("2024-01-01T00:00:04Z stdout F trunc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if l := readLine(t, r); l != "2024-01-01T00:00:04Z trunc\n" {
		t.Fatalf("got %q", l)
	}
	// The container exits after a last line: the stream ends after it.
	appendFile(t, path, "2024-01-01T00:00:05Z stdout F bye\n")
	f.setState("c1", runtimeapi.ContainerState_CONTAINER_EXITED)
	if l := readLine(t, r); l != "2024-01-01T00:00:05Z bye\n" {
		t.Fatalf("got %q", l)
	}
	done := make(chan error, 1)
	go func() { _, err := r.ReadString('\n'); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("more after exit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end when the container exited")
	}
}

func TestLogsFollowClientGoes(t *testing.T) {
	f := newFakeRuntime()
	f.addContainer(t, "ns", "web", "", "app", "c1", 0, runtimeapi.ContainerState_CONTAINER_RUNNING,
		"2024-01-01T00:00:00Z stdout F first\n")
	s, ts := newTestServer(t, f, nil, testPod("ns", "web", "", "app"))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/containerLogs/ns/web/app?follow=true&tailLines=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if l := readLine(t, bufio.NewReader(resp.Body)); l != "first\n" {
		t.Fatalf("got %q", l)
	}
	cancel()
	_ = resp.Body.Close()
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still running after the client left")
	}
}

func TestLogsFollowLimitBytes(t *testing.T) {
	f := newFakeRuntime()
	path := f.addContainer(t, "ns", "web", "", "app", "c1", 0, runtimeapi.ContainerState_CONTAINER_RUNNING, "")
	_, ts := newTestServer(t, f, nil, testPod("ns", "web", "", "app"))
	go func() {
		time.Sleep(50 * time.Millisecond)
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0); err == nil {
			_, _ = f.WriteString("2024-01-01T00:00:00Z stdout F 0123456789\n")
			_ = f.Close()
		}
	}()
	if code, body := get(t, ts.URL+"/containerLogs/ns/web/app?follow=true&limitBytes=5"); code != 200 || body != "01234" {
		t.Fatalf("got %d %q", code, body)
	}
}

func TestParseCRILine(t *testing.T) {
	for _, tc := range []struct {
		in      string
		ok      bool
		stream  string
		partial bool
		content string
	}{
		{"2024-01-01T00:00:00Z stdout F hello world\n", true, "stdout", false, "hello world"},
		{"2024-01-01T00:00:00.123456789+02:00 stderr P  x ", true, "stderr", true, " x "},
		{"2024-01-01T00:00:00Z stdout F", true, "stdout", false, ""},
		{"2024-01-01T00:00:00Z stdout P:extra y", true, "stdout", true, "y"},
		{"2024-01-01T00:00:00Z stdin F x", false, "", false, ""},
		{"yesterday stdout F x", false, "", false, ""},
		{"2024-01-01T00:00:00Z", false, "", false, ""},
		{"2024-01-01T00:00:00Z stdout  x", false, "", false, ""},
		{"", false, "", false, ""},
	} {
		l, err := parseCRILine([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if tc.ok && (l.stream != tc.stream || l.partial != tc.partial || string(l.content) != tc.content) {
			t.Errorf("%q: got %+v", tc.in, l)
		}
	}
}

func FuzzParseCRILine(f *testing.F) {
	for _, l := range strings.Split(sampleLog, "\n") {
		f.Add([]byte(l))
	}
	f.Add([]byte("2024-01-01T00:00:00Z stdout P:a:b "))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseCRILine(b)
		if err != nil {
			return
		}
		if l.stream != streamStdout && l.stream != streamStderr {
			t.Fatalf("stream %q", l.stream)
		}
		if len(l.content) > len(b) {
			t.Fatal("content longer than line")
		}
	})
}

func FuzzParseLogOptions(f *testing.F) {
	for _, q := range []string{"follow=true&tailLines=10", "sinceSeconds=99999999999999999", "sinceTime=2024-01-01T00:00:00Z",
		"limitBytes=1&previous=1&timestamps=false", "tail=all&stream=Stdout", "tailLines=%zz"} {
		f.Add(q)
	}
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		o, err := parseLogOptions(q, now)
		if err != nil {
			return
		}
		if o.tailLines < -1 || o.limitBytes < 0 || (o.stream != "" && o.stream != streamStdout && o.stream != streamStderr) {
			t.Fatalf("invalid options accepted: %+v", o)
		}
		if _, err := parseStreamOptions(q, true); err == nil && len(q["command"]) == 0 {
			t.Fatal("exec without command accepted")
		}
		if ports, err := parsePorts(q); err == nil {
			for _, p := range ports {
				if p < 1 || p > 65535 {
					t.Fatalf("port %d accepted", p)
				}
			}
		}
	})
}
