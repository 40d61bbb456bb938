// Command virtual-mapper is a DMI mapper for protocol "virtual": simulated devices whose
// properties move as their visitor configData says (docs/mapper.md). It exists to try the
// device path end to end without hardware.
package main

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/skerry-io/skerry/mapper"
)

// Protocol is the protocolName of virtual devices.
const Protocol = "virtual"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "virtual-mapper:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("virtual-mapper", flag.ContinueOnError)
	name := fs.String("name", "virtual-mapper", "mapper name announced to the edge")
	socket := fs.String("socket", "", "unix socket this mapper serves (default /etc/kubeedge/<name>.sock)")
	dmi := fs.String("dmi-socket", mapper.DefaultDMISocket, "the edge's DMI unix socket")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if *socket == "" {
		*socket = filepath.Join("/etc/kubeedge", *name+".sock")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return mapper.Run(ctx, mapper.Config{
		Name:      *name,
		Version:   "v0.1.0",
		Socket:    *socket,
		DMISocket: *dmi,
		Logger:    log,
	}, newDriver())
}

// driver keeps each virtual device's state across reconnects and updates, so a counter does not
// restart and a written value stays written.
type driver struct {
	mu      sync.Mutex
	devices map[string]*device
}

func newDriver() *driver { return &driver{devices: map[string]*device{}} }

func (d *driver) Protocol() string { return Protocol }

func (d *driver) Connect(_ context.Context, dev *mapper.Device) (mapper.DeviceConn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := dev.Namespace + "/" + dev.Name
	vd, ok := d.devices[k]
	if !ok {
		vd = &device{props: map[string]*prop{}}
		d.devices[k] = vd
	}
	if err := vd.configure(k, dev, time.Now()); err != nil {
		return nil, err
	}
	return vd, nil
}

// device is one simulated device; it is its own DeviceConn.
type device struct {
	mu    sync.Mutex
	props map[string]*prop
}

type prop struct {
	cfg     genConfig
	gen     *generator
	read    bool         // the first read returns the initial value
	written mapper.Value // set by Write, held from then on
}

// configure sets up the generators of dev's properties, keeping those whose config did not change.
func (vd *device) configure(k string, dev *mapper.Device, now time.Time) error {
	vd.mu.Lock()
	defer vd.mu.Unlock()
	keep := make(map[string]*prop, len(dev.Properties))
	for _, p := range dev.Properties {
		cfg, err := parseGenConfig(p.Visitor)
		if err != nil {
			return fmt.Errorf("property %s: %w", p.Name, err)
		}
		if old, ok := vd.props[p.Name]; ok && old.cfg == cfg {
			keep[p.Name] = old
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(k + "/" + p.Name))
		keep[p.Name] = &prop{cfg: cfg, gen: newGenerator(cfg, now, h.Sum64())}
	}
	vd.props = keep
	return nil
}

func (vd *device) Read(_ context.Context, p *mapper.Property) (mapper.Value, error) {
	vd.mu.Lock()
	defer vd.mu.Unlock()
	pr, ok := vd.props[p.Name]
	if !ok {
		return mapper.Value{}, fmt.Errorf("property %s is not configured", p.Name)
	}
	if !pr.written.IsZero() {
		return pr.written, nil
	}
	f := pr.gen.next(time.Now(), !pr.read)
	pr.read = true
	return toValue(p.Type, f, pr.cfg), nil
}

func (vd *device) Write(_ context.Context, p *mapper.Property, v mapper.Value) error {
	vd.mu.Lock()
	defer vd.mu.Unlock()
	pr, ok := vd.props[p.Name]
	if !ok {
		return fmt.Errorf("property %s is not configured", p.Name)
	}
	pr.written = v
	return nil
}

func (vd *device) Close() error { return nil }
