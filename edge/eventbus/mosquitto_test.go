package eventbus

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

const mosquittoBin = "/usr/sbin/mosquitto"

// mosquitto is a broker process for one test, listening on 127.0.0.1:port.
type mosquitto struct {
	t    *testing.T
	conf string
	port int
	log  string
	cmd  *exec.Cmd
	// exited is closed when cmd has exited.
	exited chan struct{}
}

// startMosquitto starts mosquitto with the given extra configuration lines, or skips the
// test when mosquitto is not installed.
func startMosquitto(t *testing.T, extra string) *mosquitto {
	t.Helper()
	if _, err := os.Stat(mosquittoBin); err != nil {
		t.Skipf("mosquitto not installed (%v); install it (apt-get install mosquitto) to run the external broker tests", err)
	}
	dir := t.TempDir()
	m := &mosquitto{t: t, port: freePort(t), conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "mosquitto.log")}
	conf := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nlog_dest stderr\n%s\n", m.port, extra)
	if os.Geteuid() == 0 {
		// As root, mosquitto would switch to the user mosquitto, who cannot read the
		// test's files.
		conf += "user root\n"
	}
	if err := os.WriteFile(m.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(m.stop)
	return m
}

func (m *mosquitto) url() string { return "tcp://127.0.0.1:" + strconv.Itoa(m.port) }

func (m *mosquitto) start() {
	m.t.Helper()
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		m.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(mosquittoBin, "-c", m.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("start mosquitto: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	m.cmd, m.exited = cmd, exited
	deadline := time.Now().Add(testTimeout)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(m.port), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			m.t.Fatalf("mosquitto exited: %s", m.logText())
		default:
		}
		if time.Now().After(deadline) {
			m.stop()
			m.t.Fatalf("mosquitto did not listen on port %d within %s: %s", m.port, testTimeout, m.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (m *mosquitto) logText() string {
	b, _ := os.ReadFile(m.log)
	return string(b)
}

// stop kills the broker and waits for it to exit.
func (m *mosquitto) stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}
