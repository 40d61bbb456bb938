package mapper

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/skerry-io/skerry/api/dmi/v1beta1"
)

// Defaults of Config.
const (
	DefaultDMISocket  = "/etc/kubeedge/dmi.sock"
	DefaultMaxDevices = 10000
	// APIVersion is the DMI version a mapper announces.
	APIVersion = "v1.0.0"
	// MaxMessageSize bounds every gRPC message in both directions.
	MaxMessageSize = 4 << 20

	defaultStateCycle = 5 * time.Second
	registerTimeout   = 10 * time.Second
)

// Config configures a mapper.
type Config struct {
	// Name identifies the mapper to the edge; required.
	Name string
	// Version is the mapper's own version, announced at registration.
	Version string
	// Socket is where the mapper serves DeviceMapperService; default /etc/kubeedge/<Name>.sock.
	Socket string
	// DMISocket is the edge's DeviceManagerService socket; default /etc/kubeedge/dmi.sock.
	DMISocket string
	// MaxDevices bounds the devices the mapper accepts; default 10000.
	MaxDevices int
	// StateCycle is how often a device's state is reported when it does not change and the
	// device's status sets no reportCycle; default 5 s.
	StateCycle time.Duration
	// RetryMin and RetryMax bound the backoff of registering and reconnecting devices;
	// defaults 500 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if err := checkName("mapper name", c.Name); err != nil {
		return err
	}
	if c.Version == "" {
		c.Version = "v0.0.0"
	}
	if c.Socket == "" {
		c.Socket = filepath.Join("/etc/kubeedge", c.Name+".sock")
	}
	if c.DMISocket == "" {
		c.DMISocket = DefaultDMISocket
	}
	if c.MaxDevices <= 0 {
		c.MaxDevices = DefaultMaxDevices
	}
	if c.StateCycle <= 0 {
		c.StateCycle = defaultStateCycle
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 500 * time.Millisecond
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(30*time.Second, c.RetryMin)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Mapper is a running mapper; see Run.
type Mapper struct {
	v1beta1.UnimplementedDeviceMapperServiceServer

	cfg  Config
	drv  Driver
	log  *slog.Logger
	edge v1beta1.DeviceManagerServiceClient
	push *pusher
	// ctx is the context of the device runners: Run's.
	ctx context.Context
	wg  sync.WaitGroup
	// lost is signalled when the edge seems gone, so the mapper registers again.
	lost chan struct{}

	mu      sync.Mutex
	models  map[string]*v1beta1.DeviceModel
	devices map[string]*deviceEntry
	// retired are runners of removed devices that may still be finishing.
	retired map[string]*runner
}

// deviceEntry is a device as the edge gave it and the runner (if any) driving it.
type deviceEntry struct {
	spec  *v1beta1.Device
	model *v1beta1.DeviceModel // the model the runner was started with; nil when none
	// last is the most recently started runner, running or cancelled: a new one waits for it.
	last    *runner
	running bool
}

// Run runs a mapper for drv until ctx is cancelled; it returns nil then, or an error when the
// mapper cannot start (bad config, socket in use).
func Run(ctx context.Context, cfg Config, drv Driver) error {
	if drv == nil {
		return errors.New("mapper: no driver")
	}
	if err := cfg.setDefaults(); err != nil {
		return fmt.Errorf("mapper config: %w", err)
	}
	if err := checkName("driver protocol", drv.Protocol()); err != nil {
		return fmt.Errorf("mapper config: %w", err)
	}
	log := cfg.Logger.With("mapper", cfg.Name, "protocol", drv.Protocol())

	lis, err := listenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	dmiPath, err := filepath.Abs(cfg.DMISocket)
	if err != nil {
		lis.Close()
		return fmt.Errorf("dmi socket %s: %w", cfg.DMISocket, err)
	}
	conn, err := grpc.NewClient("unix://"+dmiPath,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
		// An idle connection would look like a lost edge and cause needless re-registration.
		grpc.WithIdleTimeout(0),
	)
	if err != nil {
		lis.Close()
		return fmt.Errorf("dmi client for %s: %w", dmiPath, err)
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := &Mapper{
		cfg:     cfg,
		drv:     drv,
		log:     log,
		edge:    v1beta1.NewDeviceManagerServiceClient(conn),
		push:    newPusher(cfg.Name, log),
		ctx:     ctx,
		lost:    make(chan struct{}, 1),
		models:  map[string]*v1beta1.DeviceModel{},
		devices: map[string]*deviceEntry{},
		retired: map[string]*runner{},
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))
	v1beta1.RegisterDeviceMapperServiceServer(srv, m)

	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(lis); err != nil {
			serveErr <- err
		}
	})
	wg.Go(func() { m.watchConn(ctx, conn) })
	wg.Go(func() { m.registerLoop(ctx) })
	log.Info("mapper serving", "socket", cfg.Socket, "dmi", dmiPath)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("serve %s: %w", cfg.Socket, err)
	}
	cancel()
	stopServer(srv)
	wg.Wait()
	m.wg.Wait() // device runners, all cancelled with ctx
	m.push.close()
	if err := os.Remove(cfg.Socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Warn("remove socket", "err", err)
	}
	log.Info("mapper stopped")
	return runErr
}

// listenUnix listens on path, replacing a stale socket but never another kind of file.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("socket path %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket dir: %w", err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		lis.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return lis, nil
}

// stopServer lets calls in flight finish, but not for long.
func stopServer(srv *grpc.Server) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		srv.Stop()
		<-done
	}
}

// registerLoop registers with the edge, retrying until it answers, and again whenever the
// edge seems to have gone away (it forgets mappers when it restarts).
func (m *Mapper) registerLoop(ctx context.Context) {
	req := &v1beta1.MapperRegisterRequest{
		WithData: true,
		Mapper: &v1beta1.MapperInfo{
			Name:       m.cfg.Name,
			Version:    m.cfg.Version,
			ApiVersion: APIVersion,
			Protocol:   m.drv.Protocol(),
			Address:    []byte(m.cfg.Socket),
			State:      StateOK,
		},
	}
	for {
		backoff := m.cfg.RetryMin
		for attempt := 0; ; attempt++ {
			// Signals from before this registration are answered by it.
			select {
			case <-m.lost:
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, registerTimeout)
			resp, err := m.edge.MapperRegister(cctx, req)
			cancel()
			if err == nil {
				if err := m.sync(resp); err != nil {
					m.log.Error("edge registration answer rejected", "err", err)
				} else {
					break
				}
			} else if ctx.Err() == nil {
				lvl := slog.LevelDebug
				if attempt == 0 || attempt%10 == 9 {
					lvl = slog.LevelWarn
				}
				m.log.Log(ctx, lvl, "register with the edge failed", "err", err, "attempt", attempt+1, "retry", backoff)
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, m.cfg.RetryMax)
		}
		select {
		case <-ctx.Done():
			return
		case <-m.lost:
			m.log.Info("edge connection lost, registering again")
		}
	}
}

// watchConn signals a lost edge when the connection drops out of READY.
func (m *Mapper) watchConn(ctx context.Context, conn *grpc.ClientConn) {
	conn.Connect()
	s := conn.GetState()
	for conn.WaitForStateChange(ctx, s) {
		ns := conn.GetState()
		if s == connectivity.Ready && ns != connectivity.Ready {
			m.edgeLost()
		}
		s = ns
	}
}

func (m *Mapper) edgeLost() {
	select {
	case m.lost <- struct{}{}:
	default:
	}
}

// reportResult handles the outcome of a report call to the edge.
func (m *Mapper) reportResult(ctx context.Context, err error, log *slog.Logger, what string) {
	if err == nil || ctx.Err() != nil {
		return
	}
	log.Debug("report to the edge failed", "report", what, "err", err)
	if isUnavailable(err) {
		m.edgeLost()
	}
}
