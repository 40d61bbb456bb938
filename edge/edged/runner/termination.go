package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet's limits on termination messages: what a container writes to its
// terminationMessagePath is read up to 4 KiB; the log fallback takes at most 80 lines and
// 2 KiB.
const (
	maxTerminationMessage = 4096
	fallbackLogLines      = 80
	fallbackLogBytes      = 2048
)

// terminationFile is where the host keeps the file mounted at a container attempt's
// terminationMessagePath. It is named by container and attempt, so a restart of edgecore
// finds the file of a container it did not create.
func (w *worker) terminationFile(c string, attempt uint32) string {
	return filepath.Join(w.r.cfg.PodsDir, string(w.uid), "containers", c, strconv.FormatUint(uint64(attempt), 10))
}

// terminationMount creates the empty, world-writable file a container writes its last words
// to (it may run as any user) and mounts it at the container's terminationMessagePath. No
// mount when the path is empty or a volume is mounted there already.
func (w *worker) terminationMount(c *corev1.Container, attempt uint32, mounts []*runtimeapi.Mount) (*runtimeapi.Mount, error) {
	path := c.TerminationMessagePath
	if path == "" {
		return nil, nil
	}
	for _, m := range mounts {
		if m.ContainerPath == path {
			return nil, nil
		}
	}
	host := w.terminationFile(c.Name, attempt)
	if err := os.MkdirAll(filepath.Dir(host), 0o750); err != nil {
		return nil, fmt.Errorf("termination message file: %w", err)
	}
	f, err := os.OpenFile(host, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o666)
	if err != nil {
		return nil, fmt.Errorf("termination message file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("termination message file: %w", err)
	}
	if err := os.Chmod(host, 0o666); err != nil { // the umask took bits away
		return nil, fmt.Errorf("termination message file: %w", err)
	}
	return &runtimeapi.Mount{ContainerPath: path, HostPath: host}, nil
}

// terminationMessage is what the kubelet reports as a terminated container's message: the
// file's content, or, with FallbackToLogsOnError and a failed container that wrote nothing,
// the end of its log. Remembered per container ID: an exited container does not change.
func (w *worker) terminationMessage(c *corev1.Container, cur *ctr) string {
	if msg, ok := w.termMsgs[cur.id]; ok {
		return msg
	}
	msg := readCapped(w.terminationFile(cur.name, cur.attempt), maxTerminationMessage)
	if msg == "" && c != nil && c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError && cur.exitCode() != 0 {
		msg = logTail(w.logPath(cur), fallbackLogLines, fallbackLogBytes)
	}
	w.termMsgs[cur.id] = msg
	return msg
}

// logPath is the container's CRI log file: the runtime reports it whole, or relative to the
// pod's log directory.
func (w *worker) logPath(cur *ctr) string {
	p := cur.status.GetLogPath()
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(w.r.cfg.PodsDir, string(w.uid), "logs", p)
}

// forgetTermination drops what is kept of a removed container attempt.
func (w *worker) forgetTermination(cur *ctr) {
	delete(w.termMsgs, cur.id)
	if err := os.Remove(w.terminationFile(cur.name, cur.attempt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.log.Warn("removing termination message file", "container", cur.name, "err", err)
	}
}

// readCapped reads at most n bytes of a file; a missing or unreadable file reads as "".
func readCapped(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, n))
	return string(b)
}

// logTail is the text of the last lines of a CRI log file (each line "<time> <stream> <tag>
// <text>"), at most maxBytes of it, read from the file's end.
func logTail(path string, lines int, maxBytes int64) string {
	if path == "" {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	// A CRI line carries about 40 bytes of prefix: read enough raw bytes for maxBytes of text.
	window := maxBytes + int64(lines)*64
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-window, 0)
	raw, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return ""
	}
	if off > 0 { // the first line is cut: drop it
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	var text [][]byte
	for line := range bytes.SplitSeq(bytes.TrimSuffix(raw, []byte{'\n'}), []byte{'\n'}) {
		fields := bytes.SplitN(line, []byte{' '}, 4)
		if len(fields) != 4 {
			continue
		}
		content := fields[3]
		if bytes.HasPrefix(fields[2], []byte("F")) { // a full line ends with a newline
			content = append(content[:len(content):len(content)], '\n')
		}
		text = append(text, content)
	}
	text = text[max(len(text)-lines, 0):]
	out := bytes.Join(text, nil)
	if int64(len(out)) > maxBytes {
		out = out[int64(len(out))-maxBytes:]
	}
	return string(out)
}
