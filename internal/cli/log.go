package cli

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

// LogFlags selects the format and level of a binary's structured log.
type LogFlags struct {
	Format string
	Level  string
}

// AddFlags registers --log-format and --log-level.
func (l *LogFlags) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&l.Format, "log-format", "text", "log format: text or json")
	f.StringVar(&l.Level, "log-level", "info", "log level: debug, info, warn or error")
}

// Logger builds the slog logger the flags describe and routes klog (client-go's logger) into it,
// so one binary writes one structured log.
func (l LogFlags) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", l.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch l.Format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", l.Format)
	}
	log := slog.New(h)
	klog.SetSlogLogger(log)
	return log, nil
}
