package main

import (
	"log/slog"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// serveGRPCHealth answers the standard gRPC health service on ln, for pods that use a grpc
// probe. It returns the server so the caller can stop it.
func serveGRPCHealth(ln net.Listener, log *slog.Logger) *grpc.Server {
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	log.Info("gRPC health listening", "addr", ln.Addr().String())
	go func() { _ = srv.Serve(ln) }() // stopped by the caller's GracefulStop
	return srv
}
