package mapper_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/skerry-io/skerry/mapper"
)

// fileDriver serves protocol "file": each property is a small text file. The device's
// protocol configData names the directory ({"dir": "/var/lib/sensors/a"}) and each property's
// visitor configData the file ({"file": "temperature"}).
type fileDriver struct{}

func (fileDriver) Protocol() string { return "file" }

func (fileDriver) Connect(_ context.Context, dev *mapper.Device) (mapper.DeviceConn, error) {
	dir, err := mapper.ConfigString(dev.ProtocolConfig, "dir", "")
	if err != nil {
		return nil, err
	}
	return fileConn{dir: dir}, os.MkdirAll(dir, 0o755)
}

type fileConn struct{ dir string }

func (c fileConn) path(p *mapper.Property) (string, error) {
	name, err := mapper.ConfigString(p.Visitor, "file", p.Name)
	return filepath.Join(c.dir, filepath.Base(name)), err
}

func (c fileConn) Read(_ context.Context, p *mapper.Property) (mapper.Value, error) {
	path, err := c.path(p)
	if err != nil {
		return mapper.Value{}, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return mapper.Value{}, err
	}
	return mapper.ParseValue(p.Type, strings.TrimSpace(string(b)))
}

func (c fileConn) Write(_ context.Context, p *mapper.Property, v mapper.Value) error {
	path, err := c.path(p)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(v.String()+"\n"), 0o644)
}

func (fileConn) Close() error { return nil }

// A complete mapper: the driver above plus Run.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := mapper.Run(ctx, mapper.Config{Name: "file-mapper", Logger: slog.Default()}, fileDriver{})
	if err != nil {
		slog.Error("mapper failed", "err", err)
		os.Exit(1)
	}
}
