package dmi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	devicesv1beta1 "github.com/skerry-io/skerry/api/devices/v1beta1"
	pb "github.com/skerry-io/skerry/api/dmi/v1beta1"
	"github.com/skerry-io/skerry/edge/devicetwin"
	"github.com/skerry-io/skerry/edge/store"
)

// Twins is the part of the device twin the server uses.
type Twins interface {
	// ReportTwins records what a mapper read from a device and the desired values it
	// applied.
	ReportTwins(ctx context.Context, namespace, name string, reports []devicetwin.Report) error
	// ReportState records a device's connectivity state.
	ReportState(ctx context.Context, namespace, name, state string) error
	// Expected returns the desired values in force now, by property name.
	Expected(namespace, name string) map[string]devicetwin.Value
}

// Deps are the server's collaborators.
type Deps struct {
	// Store holds the node's Devices and DeviceModels and keeps mapper registrations.
	// Required.
	Store *store.DB
	// Twins receives the mappers' reports and says which desired values are in force.
	// Required.
	Twins Twins
	// Logger receives structured logs. nil: slog.Default().
	Logger *slog.Logger
}

// gracePeriod is how long Run lets requests in flight finish when it stops.
const gracePeriod = 5 * time.Second

// Server is the edge's DMI server: mappers register with it and report twins and states to
// it, and it pushes the node's devices to them. Run may be called once.
type Server struct {
	cfg     Config
	store   *store.DB
	twins   Twins
	log     *slog.Logger
	limiter *rate.Limiter
	panics  atomic.Int64

	// regMu serialises registrations, so that a mapper's old worker has stopped before
	// its replacement starts.
	regMu sync.Mutex

	mu      sync.Mutex
	ctx     context.Context // Run's, while it serves; workers run under it
	ran     bool
	devices map[objKey]*devicesv1beta1.Device
	models  map[objKey]*devicesv1beta1.DeviceModel
	mappers map[string]*mapper // by registration key (lowercase name)
	wg      sync.WaitGroup     // the mappers' workers
}

// New returns a server; it does nothing until Run.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Twins == nil {
		return nil, errors.New("dmi: Store and Twins are required")
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{
		cfg:     cfg,
		store:   deps.Store,
		twins:   deps.Twins,
		log:     log.With("component", "dmi"),
		limiter: rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), cfg.Burst),
		devices: map[objKey]*devicesv1beta1.Device{},
		models:  map[objKey]*devicesv1beta1.DeviceModel{},
		mappers: map[string]*mapper{},
	}, nil
}

// Panics returns how many requests ended in a recovered panic.
func (s *Server) Panics() int64 { return s.panics.Load() }

// Run loads the node's devices and the persisted mapper registrations, serves DMI on the
// socket and pushes device changes to mappers until ctx ends. It owns every goroutine it
// starts and, when it returns, has closed the listener and removed the socket.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("dmi: Run called twice")
	}
	s.ran = true
	s.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	rev, err := s.relist(ctx)
	if err != nil {
		return err
	}
	lis, err := listen(s.cfg.Socket, s.cfg.Group)
	if err != nil {
		return err
	}
	defer removeSocket(s.cfg.Socket, lis.info, s.log)

	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	defer s.stopMappers()
	if err := s.loadMappers(ctx); err != nil {
		lis.Close()
		return err
	}

	gs := grpc.NewServer(
		grpc.MaxRecvMsgSize(s.cfg.MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(s.cfg.MaxConcurrentStreams),
		grpc.ConnectionTimeout(10*time.Second),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 30 * time.Minute, Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.ChainUnaryInterceptor(s.recoverInterceptor, s.limitInterceptor),
		grpc.ChainStreamInterceptor(s.recoverStreamInterceptor),
	)
	pb.RegisterDeviceManagerServiceServer(gs, &handler{s: s})

	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(lis) }()
	watchErr := make(chan error, 1)
	go func() { watchErr <- s.follow(ctx, rev) }()
	s.log.Info("DMI server listening", "socket", s.cfg.Socket)

	var runErr error
	watchDone, serveDone := false, false
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		serveDone = true
		runErr = fmt.Errorf("dmi: serve %s: %w", s.cfg.Socket, err)
	case err := <-watchErr:
		watchDone = true
		runErr = err
	}
	cancel()
	stopGRPC(gs)
	if !serveDone {
		<-serveErr
	}
	if !watchDone {
		<-watchErr
	}
	return runErr
}

// stopGRPC lets requests in flight finish for a while, then cuts them off.
func stopGRPC(gs *grpc.Server) {
	done := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(gracePeriod)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		gs.Stop()
		<-done
	}
}

// socketListener is a unix listener with the identity of the socket file it created, so
// that only that file is removed at the end.
type socketListener struct {
	net.Listener
	info os.FileInfo
}

// listen creates the socket: the parent directory (0750) if missing, a stale socket
// removed only when nothing answers on it, mode 0660 and the group if one is configured.
func listen(path, group string) (*socketListener, error) {
	gid := -1
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("dmi: create socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("dmi: %s exists and is not a socket; refusing to remove it", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("dmi: %s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("dmi: remove stale socket: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("dmi: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("dmi: listen: %w", err)
	}
	fail := func(err error) (*socketListener, error) {
		l.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		return fail(fmt.Errorf("dmi: chmod socket: %w", err))
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			return fail(fmt.Errorf("dmi: chown socket to group %s: %w", group, err))
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("dmi: %w", err))
	}
	return &socketListener{Listener: l, info: fi}, nil
}

func lookupGroup(group string) (int, error) {
	if n, err := strconv.Atoi(group); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return 0, fmt.Errorf("dmi: socket group: %w", err)
	}
	n, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("dmi: socket group %s has gid %q", group, g.Gid)
	}
	return n, nil
}

// removeSocket removes the socket file if it is still the one Run created (another server
// may have replaced it since).
func removeSocket(path string, created os.FileInfo, log *slog.Logger) {
	fi, err := os.Lstat(path)
	if err != nil || !os.SameFile(fi, created) {
		return
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("could not remove the DMI socket", "socket", path, "err", err)
	}
}

// recoverInterceptor turns a panic in a handler into Internal, so that one bad request
// cannot take edgecore down.
func (s *Server) recoverInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			s.log.Error("DMI handler panicked", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, "internal error")
		}
	}()
	return next(ctx, req)
}

func (s *Server) recoverStreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.panics.Add(1)
			s.log.Error("DMI stream handler panicked", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return next(srv, ss)
}

func (s *Server) limitInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if !s.limiter.Allow() {
		return nil, status.Errorf(codes.ResourceExhausted, "too many DMI requests; retry later")
	}
	return next(ctx, req)
}
