package edgejoin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/skerry-io/skerry/edge/certs"
	"github.com/skerry-io/skerry/edge/config"
	"github.com/skerry-io/skerry/internal/keadm/service"
	"github.com/skerry-io/skerry/internal/keadm/statefile"
	"github.com/skerry-io/skerry/pkg/configfile"
)

var lookPath = exec.LookPath

const (
	// Log messages edgecore writes (internal/cli and edge/hub); the wait reads them.
	logStarting     = "starting"
	logConnected    = "edgehub: connected to the cloud"
	logDisconnected = "edgehub: disconnected from the cloud, will retry"
	// tailLines is how much of edgecore's log the wait reads, and failTailLines how much a
	// failure shows.
	tailLines     = 400
	failTailLines = 20
	pollInterval  = 200 * time.Millisecond
	// exitedPolls is how many polls in a row edgecore must be down before join gives up
	// (systemd restarts it after a crash).
	exitedPolls = 10
)

// Result is what join did.
type Result struct {
	NodeName   string
	Cloud      string // hub.server
	Protocol   string
	ConfigPath string
	// Service is how edgecore runs; zero in the foreground.
	Service service.Handle
	// Exec is, in the foreground, the command to exec in keadm's place.
	Exec []string
}

// Join checks the host, writes edgecore's configuration, bootstraps the node's certificate
// and starts edgecore (or, in the foreground, returns the command to exec), then waits until
// it is connected. Running it again with the same options is safe.
func Join(ctx context.Context, o Options) (Result, error) {
	if err := o.prepare(); err != nil {
		return Result{}, err
	}
	if err := validateIgnore(o.IgnoreChecks); err != nil {
		return Result{}, err
	}
	cfg, err := BuildConfig(o)
	if err != nil {
		return Result{}, err
	}
	if o.Token != "" {
		withToken := *cfg
		withToken.Hub.Token = o.Token
		if withToken.Validate() != nil {
			return Result{}, errors.New("--token: malformed; want <64 hex characters>.<secret> as printed by `keadm gettoken`")
		}
	}
	certNode, _ := existingCertNode(cfg.DataDir)
	keepCert := certNode == cfg.NodeName
	if !keepCert && o.Token == "" {
		return Result{}, errors.New("--token is required: this node has no certificate yet; get a token on the cloud with `keadm gettoken`")
	}
	bin, err := edgecoreBinary(o.EdgecoreBinary)
	if err != nil {
		return Result{}, err
	}
	spec := service.Spec{Name: ServiceName, Binary: bin, Args: []string{"--config", o.ConfigPath()}, StateDir: o.StateDir}
	prev, err := LoadRecord(o.StateDir)
	if err != nil {
		return Result{}, fmt.Errorf("%w (remove it if this node was never joined)", err)
	}
	running, _ := o.Service.Running(spec)
	res := Result{NodeName: cfg.NodeName, Cloud: cfg.Hub.Server, Protocol: cfg.Hub.Protocol, ConfigPath: o.ConfigPath()}

	total := 5
	if o.Foreground {
		total = 3
	}
	p := &progress{w: o.Stderr, total: total}

	p.begin("checking the host")
	if err := p.end(report(p, hostChecks(ctx, &o, cfg, running), o.IgnoreChecks)); err != nil {
		return res, err
	}

	p.begin("writing " + o.ConfigPath())
	rec, err := writeConfig(&o, cfg, prev, spec)
	if err := p.end(err); err != nil {
		return res, err
	}

	p.begin("getting the node certificate from " + cfg.Hub.BootstrapAddr())
	err = nodeCertificate(ctx, &o, cfg, rec, keepCert, p)
	if err := p.end(err); err != nil {
		return res, err
	}

	if o.Foreground {
		// A service from an earlier join would fight the foreground edgecore for its ports.
		if rec.Service.Name != "" {
			if err := o.Service.Remove(ctx, rec.Service); err != nil {
				return res, fmt.Errorf("remove the edgecore service of an earlier join: %w", err)
			}
			rec.Service = service.Spec{}
			if err := saveRecord(o.StateDir, rec); err != nil {
				return res, err
			}
		}
		res.Exec = append([]string{bin}, spec.Args...)
		return res, nil
	}

	p.begin("starting edgecore")
	rec.Service = spec
	if err := saveRecord(o.StateDir, rec); err != nil {
		return res, p.end(err)
	}
	h, err := o.Service.Start(ctx, spec)
	if err == nil {
		p.detail("%s", h)
	}
	if err := p.end(err); err != nil {
		return res, err
	}
	res.Service = h

	p.begin("waiting for edgecore to connect to " + cfg.Hub.Server)
	if err := waitConnected(ctx, o.Service, spec, o.Timeout); err != nil {
		if tail, terr := o.Service.LogTail(spec, failTailLines); terr == nil && tail != "" {
			p.detail("last lines of edgecore's log (%s):", logWhere(h))
			for _, l := range strings.Split(strings.TrimRight(tail, "\n"), "\n") {
				p.detail("  %s", l)
			}
		}
		return res, p.end(err)
	}
	p.end(nil)
	printSummary(&o, res)
	return res, nil
}

func logWhere(h service.Handle) string {
	if h.Kind == service.KindSystemd {
		return "journalctl -u " + ServiceName
	}
	return h.LogPath
}

func printSummary(o *Options, r Result) {
	w := o.Stdout
	fmt.Fprintf(w, "edge node %s joined the cloud at %s (%s)\n", r.NodeName, r.Cloud, r.Protocol)
	fmt.Fprintf(w, "  config:   %s\n", r.ConfigPath)
	fmt.Fprintf(w, "  edgecore: %s\n", r.Service)
	fmt.Fprintf(w, "  check it on the cloud: kubectl get node %s\n", r.NodeName)
	fmt.Fprintf(w, "  undo it: keadm reset edge\n")
}

// writeConfig writes edgecore.yaml (0600) and the record of what join created so far.
func writeConfig(o *Options, cfg *config.EdgeCore, prev *Record, spec service.Spec) (*Record, error) {
	rec := &Record{
		NodeName:        cfg.NodeName,
		ConfigPath:      o.ConfigPath(),
		DataDir:         cfg.DataDir,
		RuntimeEndpoint: cfg.Runtime.Endpoint,
		CgroupRoot:      cfg.Edged.CgroupRoot,
	}
	if cfg.DeviceTwin.Enable {
		rec.DMISocket = cfg.DeviceTwin.DMI.Socket
	}
	if prev != nil {
		// A second join keeps what the first created: it is still join's to remove.
		rec.ConfigDirCreated = prev.ConfigDirCreated && prev.ConfigPath == rec.ConfigPath
		rec.StateDirCreated = prev.StateDirCreated
		if prev.DataDir == rec.DataDir {
			rec.DataDirCreated, rec.DataDirBefore = prev.DataDirCreated, prev.DataDirBefore
		}
		rec.Service = prev.Service
	}
	created, err := mkdirRecorded(o.StateDir, 0o755)
	if err != nil {
		return nil, err
	}
	rec.StateDirCreated = rec.StateDirCreated || created
	if created, err = mkdirRecorded(o.ConfigDir, 0o755); err != nil {
		return nil, err
	}
	rec.ConfigDirCreated = rec.ConfigDirCreated || created
	if prev == nil || prev.DataDir != rec.DataDir {
		entries, err := os.ReadDir(rec.DataDir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			rec.DataDirCreated = true
		case err != nil:
			return nil, fmt.Errorf("read data dir: %w", err)
		default:
			for _, e := range entries {
				rec.DataDirBefore = append(rec.DataDirBefore, e.Name())
			}
		}
	}
	// Recorded before anything is created, so a join that fails half-way can be reset.
	if err := saveRecord(o.StateDir, rec); err != nil {
		return nil, err
	}
	b, err := configfile.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("render edgecore configuration: %w", err)
	}
	if err := statefile.WriteAtomic(o.ConfigPath(), b, 0o600); err != nil {
		return nil, err
	}
	return rec, nil
}

// mkdirRecorded creates dir (and parents) and reports whether dir itself was missing.
func mkdirRecorded(dir string, mode os.FileMode) (bool, error) {
	if _, err := os.Stat(dir); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return false, fmt.Errorf("create %s: %w", dir, err)
	}
	return true, nil
}

// nodeCertificate keeps a valid certificate of this node, or bootstraps one with the token.
func nodeCertificate(ctx context.Context, o *Options, cfg *config.EdgeCore, rec *Record, keep bool, p *progress) error {
	if keep {
		c, err := certs.Load(cfg.DataDir)
		if err == nil {
			p.detail("kept the certificate of node %s in %s (valid until %s)", cfg.NodeName, certs.Dir(cfg.DataDir), c.Node.Cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		}
	}
	if o.Token == "" {
		return errors.New("--token is required: the node's certificate is missing or no longer valid")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	addr := cfg.Hub.BootstrapAddr()
	bctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if err := o.Bootstrap(bctx, addr, o.Token, cfg.NodeName, cfg.DataDir); err != nil {
		return explainBootstrap(bctx, err, addr)
	}
	p.detail("certificate of node %s stored in %s", cfg.NodeName, certs.Dir(cfg.DataDir))
	return nil
}

// explainBootstrap says in plain words why the cloud did not give the node its certificate.
func explainBootstrap(ctx context.Context, err error, addr string) error {
	var se *certs.StatusError
	switch {
	case errors.As(err, &se) && se.Code == http.StatusUnauthorized:
		return fmt.Errorf("the cloud refused the token: %s", se.Message)
	case errors.As(err, &se) && se.Code == http.StatusForbidden:
		return fmt.Errorf("the cloud refused this node: %s", se.Message)
	case errors.As(err, &se) && se.Code >= 500:
		return fmt.Errorf("cloudcore at %s failed (%d %s): %s; look at cloudcore's log", addr, se.Code, http.StatusText(se.Code), se.Message)
	case errors.As(err, &se):
		return fmt.Errorf("the cloud rejected the join request (%d %s): %s", se.Code, http.StatusText(se.Code), se.Message)
	case errors.Is(err, certs.ErrCAMismatch):
		return fmt.Errorf("the token was made for another cloudcore: the CA at %s does not match its hash; get a token from this cloud with `keadm gettoken`", addr)
	case ctx.Err() != nil:
		return fmt.Errorf("no answer from cloudcore's bootstrap endpoint %s in time (raise --timeout?): %w", addr, err)
	default:
		return fmt.Errorf("bootstrap the node certificate from %s: %w", addr, err)
	}
}

// waitConnected polls edgecore's log until its hub reports a connection made since its last
// start, edgecore stays down, or timeout passes.
func waitConnected(ctx context.Context, svc Service, spec service.Spec, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	down := 0
	for {
		if tail, err := svc.LogTail(spec, tailLines); err == nil && connectedSinceStart(tail) {
			return nil
		}
		if ok, err := svc.Running(spec); err == nil && !ok {
			if down++; down >= exitedPolls {
				return errors.New("edgecore exited before it connected to the cloud (its log is above)")
			}
		} else {
			down = 0
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("edgecore did not connect to the cloud within %s (raise --timeout, or read its log)", timeout)
			}
			return ctx.Err()
		case <-t.C:
		}
	}
}

// connectedSinceStart reads edgecore's log (text or JSON lines): the hub's last word since
// the last start is "connected".
func connectedSinceStart(log string) bool {
	connected := false
	for _, line := range strings.Split(log, "\n") {
		switch {
		case isMessage(line, logStarting) && strings.Contains(line, ServiceName):
			connected = false
		case isMessage(line, logConnected):
			connected = true
		case isMessage(line, logDisconnected):
			connected = false
		}
	}
	return connected
}

// isMessage matches slog's text (msg=x or msg="x y") and JSON ("msg":"x") forms.
func isMessage(line, msg string) bool {
	forms := []string{`"msg":"` + msg + `"`, `msg="` + msg + `"`}
	if !strings.ContainsAny(msg, " \"=") {
		forms = append(forms, "msg="+msg+" ")
	}
	return slices.ContainsFunc(forms, func(f string) bool { return strings.Contains(line+" ", f) })
}

// prepare fills in the defaults and makes the directories absolute (the service needs them so).
func (o *Options) prepare() error {
	o.setDefaults()
	for _, d := range []struct {
		flag string
		p    *string
	}{{"--config-dir", &o.ConfigDir}, {"--state-dir", &o.StateDir}} {
		a, err := filepath.Abs(*d.p)
		if err != nil {
			return fmt.Errorf("%s %q: %w", d.flag, *d.p, err)
		}
		if a == "/" {
			return fmt.Errorf("%s: / is not a directory join may own", d.flag)
		}
		*d.p = a
	}
	return nil
}
