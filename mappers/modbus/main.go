// Command modbus-mapper is the DMI mapper for Modbus TCP and RTU devices (protocolName
// "modbus"). It registers with the edge over DMI and polls and writes the devices the edge
// gives it; docs/modbus.md describes the device configuration it accepts.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/skerry-io/skerry/mapper"
	"github.com/skerry-io/skerry/mappers/modbus/driver"
	"github.com/skerry-io/skerry/pkg/modbus"
	"github.com/skerry-io/skerry/pkg/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "modbus-mapper:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg     mapper.Config
		drv     driver.Driver
		verbose = flag.Bool("v", false, "debug logging")
	)
	flag.StringVar(&cfg.Name, "name", "modbus-mapper", "mapper name announced to the edge")
	flag.StringVar(&cfg.Socket, "socket", "", "socket the mapper serves DMI on (default /etc/kubeedge/<name>.sock)")
	flag.StringVar(&cfg.DMISocket, "dmi-socket", mapper.DefaultDMISocket, "the edge's DMI socket")
	flag.DurationVar(&drv.Options.Timeout, "timeout", modbus.DefaultTimeout, "per-request timeout (a device's configData \"timeout\" overrides it)")
	flag.IntVar(&drv.Options.Retries, "retries", modbus.DefaultRetries, "retries of a request after an I/O error (-1: none)")
	flag.DurationVar(&drv.Options.DialTimeout, "dial-timeout", 5*time.Second, "connect timeout")
	flag.Parse()
	if flag.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger, drv.Logger = log, log
	cfg.Version = version.Get().GitVersion
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return mapper.Run(ctx, cfg, &drv)
}
