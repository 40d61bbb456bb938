package cloudinstall

import (
	"context"
	"os/exec"

	"github.com/skerry-io/skerry/internal/keadm/service"
)

// Services runs process mode's cloudcore; package service does it on the host, tests fake it.
type Services interface {
	Start(ctx context.Context, s service.Spec) (service.Handle, error)
	Running(s service.Spec) (bool, error)
	Remove(ctx context.Context, s service.Spec) error
	LogTail(s service.Spec, lines int) (string, error)
}

type hostServices struct{}

func (hostServices) Start(ctx context.Context, s service.Spec) (service.Handle, error) {
	return service.Start(ctx, s)
}
func (hostServices) Running(s service.Spec) (bool, error)             { return service.Running(s) }
func (hostServices) Remove(ctx context.Context, s service.Spec) error { return service.Remove(ctx, s) }
func (hostServices) LogTail(s service.Spec, lines int) (string, error) {
	return service.LogTail(s, lines)
}

var lookPath = exec.LookPath
