package edgejoin

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skerry-io/skerry/edge/certs"
	"github.com/skerry-io/skerry/edge/config"
	"github.com/skerry-io/skerry/pkg/configfile"
)

func TestJoinWritesConfigAndStarts(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	o.Labels = "site=lab"
	res, err := Join(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, e.errw.String())
	}
	path := filepath.Join(o.ConfigDir, ConfigFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config %v mode %v", err, fi)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), "secret") || strings.Contains(string(raw), "token") {
		t.Fatalf("config holds the token:\n%s", raw)
	}
	cfg := config.Default()
	if err := configfile.Load(path, config.Meta, cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Validate() != nil || cfg.NodeName != "edge-1" || cfg.Hub.Server != "10.0.0.1:10000" || cfg.Node.Labels["site"] != "lab" {
		t.Fatalf("config %+v", cfg)
	}
	if e.boot.calls != 1 || len(e.svc.starts) != 1 {
		t.Fatalf("bootstrap calls %d, starts %d", e.boot.calls, len(e.svc.starts))
	}
	s := e.svc.starts[0]
	if s.Name != "edgecore" || s.Binary != "/bin/true" || strings.Join(s.Args, " ") != "--config "+path || s.StateDir != o.StateDir {
		t.Fatalf("spec %+v", s)
	}
	if res.NodeName != "edge-1" || res.Service.PID != 4242 {
		t.Fatalf("result %+v", res)
	}
	for _, want := range []string{"edge node edge-1 joined the cloud at 10.0.0.1:10000 (websocket)", "config:   " + path, "kubectl get node edge-1"} {
		if !strings.Contains(e.out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, e.out.String())
		}
	}
	for _, want := range []string{"[1/5] checking the host", "[5/5] waiting for edgecore to connect", "done ("} {
		if !strings.Contains(e.errw.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, e.errw.String())
		}
	}
	rec, err := LoadRecord(o.StateDir)
	if err != nil || rec == nil || !rec.DataDirCreated || !rec.StateDirCreated || !rec.ConfigDirCreated || rec.Service.Name != "edgecore" {
		t.Fatalf("record %+v %v", rec, err)
	}
}

func TestJoinTwice(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(filepath.Join(o.ConfigDir, ConfigFile))
	rec1, _ := os.ReadFile(recordPath(o.StateDir))
	// Same flags, and again without the token: the certificate is kept, edgecore restarted.
	for _, token := range []string{testToken, ""} {
		o.Token = token
		e.out.Reset()
		if _, err := Join(context.Background(), o); err != nil {
			t.Fatalf("join again (token %q): %v\n%s", token, err, e.errw.String())
		}
	}
	second, _ := os.ReadFile(filepath.Join(o.ConfigDir, ConfigFile))
	rec2, _ := os.ReadFile(recordPath(o.StateDir))
	if string(first) != string(second) || string(rec1) != string(rec2) {
		t.Fatalf("config or record changed:\n%s\n%s\n%s\n%s", first, second, rec1, rec2)
	}
	if e.boot.calls != 1 || len(e.svc.starts) != 3 {
		t.Fatalf("bootstrap calls %d (want 1), starts %d (want 3)", e.boot.calls, len(e.svc.starts))
	}
	if !strings.Contains(e.errw.String(), "kept the certificate of node edge-1") {
		t.Fatalf("progress:\n%s", e.errw.String())
	}
}

func TestJoinNeedsToken(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	o.Token = ""
	if _, err := Join(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--token is required") {
		t.Fatalf("err %v", err)
	}
	o.Token = "nope"
	if _, err := Join(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--token: malformed") {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(o.StateDir); !os.IsNotExist(err) {
		t.Fatal("a refused join created its state dir")
	}
}

func TestJoinBootstrapRefusals(t *testing.T) {
	for name, c := range map[string]struct {
		err  error
		want string
	}{
		"expired":   {&certs.StatusError{Code: http.StatusUnauthorized, Message: "token abc expired at 2020-01-01T00:00:00Z"}, "the cloud refused the token: token abc expired"},
		"bound":     {&certs.StatusError{Code: http.StatusForbidden, Message: `bound to node "x"`}, "the cloud refused this node"},
		"server":    {&certs.StatusError{Code: http.StatusInternalServerError, Message: "boom"}, "look at cloudcore's log"},
		"other ca":  {certs.ErrCAMismatch, "made for another cloudcore"},
		"transport": {errors.New("connection refused"), "bootstrap the node certificate from 10.0.0.1:10002: connection refused"},
	} {
		e := newEnv(t)
		e.boot.err = c.err
		_, err := Join(context.Background(), e.options())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", name, err, c.want)
		}
		if len(e.svc.starts) != 0 {
			t.Errorf("%s: edgecore started", name)
		}
	}
}

func TestJoinHostCheckFails(t *testing.T) {
	e := newEnv(t)
	e.rt.versionErr = errors.New("connection refused")
	o := e.options()
	_, err := Join(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "host checks failed: runtime") {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(e.errw.String(), "runtime    FAILED") || e.boot.calls != 0 {
		t.Fatalf("progress:\n%s", e.errw.String())
	}
	o.IgnoreChecks = []string{"runtime"}
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatalf("ignored check still fails: %v", err)
	}
}

func TestJoinWaitFailsWithLog(t *testing.T) {
	e := newEnv(t)
	e.svc.connect = "time=y level=ERROR msg=\"edgehub: dial failed\" err=\"tls: bad certificate\"\n"
	o := e.options()
	o.Timeout = 500 * time.Millisecond
	_, err := Join(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "did not connect to the cloud within 500ms") {
		t.Fatalf("err %v", err)
	}
	if !strings.Contains(e.errw.String(), "tls: bad certificate") || !strings.Contains(e.errw.String(), "edgecore.log") {
		t.Fatalf("progress lacks the log tail and its path:\n%s", e.errw.String())
	}
}

func TestJoinForeground(t *testing.T) {
	e := newEnv(t)
	o := e.options()
	if _, err := Join(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	o.Foreground = true
	res, err := Join(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Exec, " ") != "/bin/true --config "+filepath.Join(o.ConfigDir, ConfigFile) {
		t.Fatalf("exec %q", res.Exec)
	}
	if len(e.svc.removes) != 1 || len(e.svc.starts) != 1 {
		t.Fatalf("the earlier service was not removed: removes %d starts %d", len(e.svc.removes), len(e.svc.starts))
	}
	if rec, _ := LoadRecord(o.StateDir); rec.Service.Name != "" {
		t.Fatalf("record keeps the service: %+v", rec.Service)
	}
}

func TestConnectedSinceStart(t *testing.T) {
	for _, c := range []struct {
		log  string
		want bool
	}{
		{"", false},
		{"msg=starting binary=edgecore\nmsg=\"edgehub: connected to the cloud\"\n", true},
		{"msg=\"edgehub: connected to the cloud\"\nmsg=starting binary=edgecore\n", false},
		{"msg=starting binary=edgecore\nmsg=\"edgehub: connected to the cloud\"\nmsg=\"edgehub: disconnected from the cloud, will retry\"\n", false},
		{`{"msg":"starting","binary":"edgecore"}` + "\n" + `{"msg":"edgehub: connected to the cloud"}`, true},
		{"msg=\"edgehub: connected to the cloud\"\nmsg=\"edgehub: disconnected from the cloud, will retry\"\nmsg=\"edgehub: connected to the cloud\"\n", true},
	} {
		if got := connectedSinceStart(c.log); got != c.want {
			t.Errorf("connectedSinceStart(%q) = %v, want %v", c.log, got, c.want)
		}
	}
}
