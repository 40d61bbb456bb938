package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skerry-io/skerry/edge/edged"
)

const (
	// maxRawLine bounds one line of a log file: containerd splits output into chunks of
	// 16 KiB, so anything longer is a damaged file and is truncated rather than buffered.
	maxRawLine = 1 << 20
	// maxLogicalLine bounds how much of a line made of partial chunks is joined before it is
	// written out anyway, so a process that never writes a newline cannot exhaust memory.
	maxLogicalLine = 1 << 20
	// tailBlock is the read size of the backward scan that finds where the tail starts.
	tailBlock = 32 << 10
)

// errLimitReached ends a log stream once limitBytes were written.
var errLimitReached = errors.New("limitBytes reached")

// serveLogs answers GET /containerLogs/{namespace}/{pod}/{container}.
func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request, namespace, podName, container string) {
	if err := validateNames(namespace, podName, container); err != nil {
		writeError(w, err)
		return
	}
	opts, err := parseLogOptions(r.URL.Query(), s.cfg.Now())
	if err != nil {
		writeStatus(w, http.StatusBadRequest, err.Error())
		return
	}
	pod := s.findPod(namespace, podName)
	if pod == nil {
		writeStatus(w, http.StatusNotFound, fmt.Sprintf("pod %q does not exist", podName))
		return
	}
	if !hasContainer(pod, container) {
		writeStatus(w, http.StatusNotFound, fmt.Sprintf("container %q not found in pod %q", container, podName))
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	cs, err := s.listContainers(ctx, pod, container)
	if err != nil {
		writeError(w, err)
		return
	}
	var c *runtimeapi.Container
	switch {
	case opts.previous && len(cs) < 2:
		writeStatus(w, http.StatusBadRequest, fmt.Sprintf("previous terminated container %q in pod %q not found", container, podName))
		return
	case opts.previous:
		c = cs[1]
	case len(cs) == 0:
		writeStatus(w, http.StatusBadRequest, fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", container, podName))
		return
	default:
		c = cs[0]
	}
	st, err := s.containerStatus(ctx, c.Id)
	if err != nil {
		writeError(w, err)
		return
	}
	if st.LogPath == "" || !filepath.IsAbs(st.LogPath) {
		writeStatus(w, http.StatusBadRequest, fmt.Sprintf("container %q in pod %q has no log file", container, podName))
		return
	}
	f, err := os.Open(st.LogPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			writeStatus(w, http.StatusNotFound, fmt.Sprintf("log file of container %q in pod %q does not exist", container, podName))
			return
		}
		writeError(w, fmt.Errorf("open log: %w", err))
		return
	}
	// A container that no longer runs writes nothing more: following it ends at the end.
	if st.State != runtimeapi.ContainerState_CONTAINER_RUNNING && st.State != runtimeapi.ContainerState_CONTAINER_CREATED {
		opts.follow = false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	out := newLogOutput(w, func() { _ = rc.Flush() }, opts)
	t := &logTail{
		s:    s,
		path: st.LogPath,
		id:   c.Id,
		opts: opts,
		out:  out,
	}
	if err := t.run(ctx, f); err != nil && !errors.Is(err, errLimitReached) && ctx.Err() == nil {
		s.log.Debug("log stream ended", "pod", namespace+"/"+podName, "container", container, "err", err)
	}
}

// validateNames refuses names that cannot be a namespace, pod or container, before they
// reach the runtime as label filters.
func validateNames(namespace, pod string, containers ...string) error {
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return errorf(http.StatusBadRequest, "invalid namespace %q", namespace)
	}
	if errs := validation.IsDNS1123Subdomain(pod); len(errs) > 0 {
		return errorf(http.StatusBadRequest, "invalid pod name %q", pod)
	}
	for _, c := range containers {
		if errs := validation.IsDNS1123Label(c); len(errs) > 0 {
			return errorf(http.StatusBadRequest, "invalid container name %q", c)
		}
	}
	return nil
}

// listContainers returns the runtime's containers of the pod's container, newest attempt
// first.
func (s *Server) listContainers(ctx context.Context, pod *corev1.Pod, container string) ([]*runtimeapi.Container, error) {
	sel := map[string]string{
		edged.LabelPodNamespace:  pod.Namespace,
		edged.LabelPodName:       pod.Name,
		edged.LabelContainerName: container,
	}
	if pod.UID != "" {
		sel[edged.LabelPodUID] = string(pod.UID)
	}
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.cfg.Runtime.ListContainers(cctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{LabelSelector: sel},
	})
	if err != nil {
		return nil, criError("list containers", err)
	}
	var cs []*runtimeapi.Container
	for _, c := range resp.GetContainers() {
		if c != nil && c.Id != "" {
			cs = append(cs, c)
		}
	}
	sort.SliceStable(cs, func(i, j int) bool {
		ai, aj := cs[i].GetMetadata().GetAttempt(), cs[j].GetMetadata().GetAttempt()
		if ai != aj {
			return ai > aj
		}
		return cs[i].CreatedAt > cs[j].CreatedAt
	})
	return cs, nil
}

// containerStatus returns the container's status (not verbose: the log path is all we need).
func (s *Server) containerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.cfg.Runtime.ContainerStatus(cctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		return nil, criError("container status", err)
	}
	if resp.GetStatus() == nil {
		return nil, errorf(http.StatusNotFound, "container %q has no status", id)
	}
	return resp.GetStatus(), nil
}

// criError gives a runtime error the HTTP code its gRPC code means.
func criError(op string, err error) error {
	code := http.StatusInternalServerError
	switch status.Code(err) {
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.Unavailable:
		code = http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		code = http.StatusGatewayTimeout
	case codes.InvalidArgument:
		code = http.StatusBadRequest
	}
	return &statusError{code: code, msg: fmt.Sprintf("runtime: %s: %v", op, err)}
}

// logLine is one line to write: joined from partial chunks, with the first chunk's time.
type logLine struct {
	ts     time.Time
	stream string
	text   []byte
	// newline is false for a fragment of an over-long line and for a line the file ends
	// in the middle of.
	newline bool
	// cont marks the rest of a line whose start was already written (no timestamp prefix).
	cont bool
}

// logOutput joins partial lines, filters and writes them.
type logOutput struct {
	w     io.Writer
	flush func()
	opts  logOptions
	// starts are the streams' tail offsets (tailStart) while the first file is read.
	starts *[2]int64
	// remaining bytes under limitBytes; < 0: unlimited.
	remaining int64
	// pending holds each stream's partial line.
	pending map[string]*logLine
}

func newLogOutput(w io.Writer, flush func(), opts logOptions) *logOutput {
	o := &logOutput{w: w, flush: flush, opts: opts, remaining: -1, pending: map[string]*logLine{}}
	if opts.limitBytes > 0 {
		o.remaining = opts.limitBytes
	}
	return o
}

// add takes one raw line of the file, read at offset off.
func (o *logOutput) add(raw []byte, off int64) error {
	l, err := parseCRILine(raw)
	if err != nil {
		return nil // as the kubelet: a damaged line is skipped
	}
	if o.opts.stream != "" && l.stream != o.opts.stream {
		return nil
	}
	if o.starts != nil && off < o.starts[streamIndex(l.stream)] {
		return nil // before this stream's tail
	}
	p := o.pending[l.stream]
	if p == nil {
		p = &logLine{ts: l.ts, stream: l.stream}
		o.pending[l.stream] = p
	}
	if len(p.text)+len(l.content) > maxLogicalLine {
		// Write what was joined so far; the rest of the line follows without a prefix.
		cont := *p
		if err := o.emit(cont); err != nil {
			return err
		}
		*p = logLine{ts: l.ts, stream: l.stream, cont: true}
	}
	p.text = append(p.text, l.content...)
	if l.partial {
		return nil
	}
	p.newline = true
	line := *p
	delete(o.pending, l.stream)
	return o.emit(line)
}

// flushPending writes partial lines the file ends with (when it will not grow any more).
func (o *logOutput) flushPending() error {
	for _, st := range []string{streamStdout, streamStderr} {
		if p := o.pending[st]; p != nil && len(p.text) > 0 {
			delete(o.pending, st)
			if err := o.emit(*p); err != nil {
				return err
			}
		}
	}
	return nil
}

// emit writes l unless it is older than since.
func (o *logOutput) emit(l logLine) error {
	if !o.opts.since.IsZero() && l.ts.Before(o.opts.since) {
		return nil
	}
	var b []byte
	if o.opts.timestamps && !l.cont {
		b = l.ts.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, ' ')
	}
	b = append(b, l.text...)
	if l.newline {
		b = append(b, '\n')
	}
	limited := false
	if o.remaining >= 0 && int64(len(b)) >= o.remaining {
		b = b[:o.remaining]
		limited = true
	}
	if _, err := o.w.Write(b); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	if o.remaining >= 0 {
		o.remaining -= int64(len(b))
	}
	if limited {
		o.flush()
		return errLimitReached
	}
	return nil
}

// logTail reads (and follows) one container's log file.
type logTail struct {
	s    *Server
	path string
	id   string
	opts logOptions
	out  *logOutput

	f     *os.File
	br    *bufio.Reader
	carry []byte
	// off is the file offset after what was read; lineStart where carry's line began.
	off, lineStart int64
	// skipping is set while the rest of an over-long raw line is discarded.
	skipping bool
}

// run writes the file's lines and, when following, new ones until the container stops,
// ctx ends or limitBytes is reached. It closes f.
func (t *logTail) run(ctx context.Context, f *os.File) error {
	t.f, t.br = f, bufio.NewReaderSize(f, 64<<10)
	defer func() { _ = t.f.Close() }()
	if t.opts.tailLines == 0 && !t.opts.follow {
		return nil
	}
	if t.opts.tailLines >= 0 {
		// Lines are written as they are read (never buffered), so the tail is found by
		// scanning back from the end for where its first line starts.
		starts, err := tailStart(f, t.opts.tailLines, t.opts.stream)
		if err != nil {
			return err
		}
		start := min(starts[0], starts[1])
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return fmt.Errorf("seek log: %w", err)
		}
		t.br.Reset(f)
		t.off = start
		t.out.starts = &starts
	}
	if err := t.drain(); err != nil {
		return err
	}
	if !t.opts.follow {
		return t.finish()
	}
	t.out.flush()
	poll := time.NewTicker(t.s.cfg.LogPollInterval)
	defer poll.Stop()
	lastCheck := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		}
		if err := t.drain(); err != nil {
			return err
		}
		if err := t.checkRotation(); err != nil {
			return err
		}
		t.out.flush()
		if time.Since(lastCheck) < t.s.cfg.ContainerCheckInterval {
			continue
		}
		lastCheck = time.Now()
		if t.exited(ctx) {
			// Read what the container wrote before it stopped.
			if err := t.drain(); err != nil {
				return err
			}
			return t.finish()
		}
	}
}

// finish writes what is left at the very end: an unterminated last line and partial lines.
func (t *logTail) finish() error {
	if len(t.carry) > 0 && !t.skipping {
		line := t.carry
		t.carry = nil
		if err := t.out.add(line, t.lineStart); err != nil {
			return err
		}
	}
	if err := t.out.flushPending(); err != nil {
		return err
	}
	t.out.flush()
	return nil
}

// drain reads complete lines until the end of the file; an unterminated last line waits in
// carry for the rest of it.
func (t *logTail) drain() error {
	for {
		if len(t.carry) == 0 && !t.skipping {
			t.lineStart = t.off
		}
		chunk, err := t.br.ReadSlice('\n')
		t.off += int64(len(chunk))
		if !t.skipping {
			if len(t.carry)+len(chunk) > maxRawLine {
				// Keep the start of a damaged, over-long line and drop the rest.
				t.carry = append(t.carry, chunk[:maxRawLine-len(t.carry)]...)
				t.skipping = true
			} else {
				t.carry = append(t.carry, chunk...)
			}
		}
		switch {
		case err == nil:
			line := t.carry
			t.carry, t.skipping = nil, false
			if aerr := t.out.add(line, t.lineStart); aerr != nil {
				return aerr
			}
		case errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return fmt.Errorf("read log: %w", err)
		}
	}
}

// checkRotation reopens the log when its path names another file now (rotated and
// replaced), and rereads from the start when it was truncated in place.
func (t *logTail) checkRotation() error {
	cur, err := t.f.Stat()
	if err != nil {
		return fmt.Errorf("stat log: %w", err)
	}
	fi, err := os.Stat(t.path)
	if err != nil {
		return nil // removed: the container check ends the stream if the container is gone
	}
	if !os.SameFile(cur, fi) {
		nf, err := os.Open(t.path)
		if err != nil {
			return nil // replaced again or removed meanwhile: try at the next poll
		}
		// Whatever the old file still held was read by the drain just before.
		_ = t.f.Close()
		t.f = nf
		t.reset()
		return t.drain()
	}
	if fi.Size() < t.off {
		if _, err := t.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("seek log: %w", err)
		}
		t.reset()
		return t.drain()
	}
	return nil
}

// reset starts reading t.f from its current offset, which is 0: a new or truncated file.
func (t *logTail) reset() {
	t.br.Reset(t.f)
	t.carry, t.skipping, t.off = nil, false, 0
	t.out.starts = nil
}

// exited says whether the container stopped or is gone. A runtime that does not answer
// counts as running: the client may still want the lines once it is back.
func (t *logTail) exited(ctx context.Context) bool {
	st, err := t.s.containerStatus(ctx, t.id)
	if err != nil {
		var se *statusError
		return errors.As(err, &se) && se.code == http.StatusNotFound
	}
	return st.State != runtimeapi.ContainerState_CONTAINER_RUNNING && st.State != runtimeapi.ContainerState_CONTAINER_CREATED
}

// streamIndex indexes per-stream arrays: stdout 0, stderr 1.
func streamIndex(stream string) int {
	if stream == streamStderr {
		return 1
	}
	return 0
}

// tailStart finds where the last n lines of the file (of stream, when not "") begin, per
// stream: a line is its partial chunks and a final one, and the two streams' chunks
// interleave, so each stream's tail starts just after its own chunk that ends the line before
// its first line in the tail. Reading forward from the lesser offset and skipping each
// stream's chunks before its own offset yields exactly the tail, without buffering it.
func tailStart(f *os.File, n int64, stream string) ([2]int64, error) {
	var starts [2]int64
	fi, err := f.Stat()
	if err != nil {
		return starts, fmt.Errorf("stat log: %w", err)
	}
	size := fi.Size()
	if n == 0 {
		return [2]int64{size, size}, nil
	}
	var done, seen [2]bool
	for i, name := range []string{streamStdout, streamStderr} {
		if stream != "" && stream != name {
			done[i], starts[i] = true, size
		}
	}
	var found int64
	filled := false
	var fillPos int64
	pos := size
	var data []byte // the file's bytes [pos, pos+len(data)) not yet examined
	for {
		// Examine complete raw lines at the end of data, last first.
		for len(data) > 0 {
			i := bytes.LastIndexByte(data[:len(data)-1], '\n')
			if i < 0 && pos > 0 {
				break // the line starts before pos: read more
			}
			line := data[i+1:]
			lineStart := pos + int64(i+1)
			lineEnd := lineStart + int64(len(line))
			data = data[:i+1]
			l, err := parseCRILine(line)
			if err != nil {
				continue
			}
			si := streamIndex(l.stream)
			if done[si] {
				continue
			}
			switch {
			case !filled:
				// A stream's last chunk ends a line even when partial: it is written out
				// as one at the end.
				if !l.partial || !seen[si] {
					found++
					if found == n {
						filled, fillPos = true, lineStart
						// A stream not seen yet has no line in the tail.
						for k := range done {
							if !seen[k] && k != si && !done[k] {
								done[k], starts[k] = true, lineStart
							}
						}
					}
				}
				seen[si] = true
			case !l.partial:
				// The chunk ending the line before this stream's first line in the tail.
				done[si], starts[si] = true, lineEnd
			}
			if done[0] && done[1] {
				return starts, nil
			}
		}
		if pos == 0 {
			return starts, nil // streams not done start at the beginning
		}
		if len(data) > 4*maxRawLine || (filled && fillPos-pos > 4*maxLogicalLine) {
			// A damaged file with a huge line, or a stream whose line began very long ago:
			// start where the scan is.
			at := pos + int64(len(data))
			for k := range done {
				if !done[k] {
					starts[k] = at
				}
			}
			return starts, nil
		}
		size := min(int64(tailBlock), pos)
		pos -= size
		buf := make([]byte, size, int(size)+len(data))
		if _, err := f.ReadAt(buf, pos); err != nil && !errors.Is(err, io.EOF) {
			return starts, fmt.Errorf("read log: %w", err)
		}
		data = append(buf, data...)
	}
}
