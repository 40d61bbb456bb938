// Package cli holds what the command lines of Skerry's binaries share: the --version,
// --config, --defaultconfig and --minconfig flags, strict config loading, structured logging and signal
// handling. Each binary supplies its config type and its run function.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/skerry-io/skerry/pkg/configfile"
	"github.com/skerry-io/skerry/pkg/version"
)

// Config is a daemon's versioned configuration.
type Config interface {
	// Validate reports every invalid setting, naming its key.
	Validate() error
}

// Daemon describes one long-running binary.
type Daemon[C Config] struct {
	Name     string
	Short    string
	Meta     configfile.TypeMeta
	Defaults func() C
	// Minimal returns the --minconfig document: the keys an operator normally sets, with
	// placeholders. Nil leaves the flag out.
	Minimal func() []byte
	// Run runs until ctx is cancelled (SIGINT/SIGTERM) or a fatal error.
	Run func(ctx context.Context, cfg C, log *slog.Logger) error
}

// Command builds the daemon's root command.
func (d Daemon[C]) Command() *cobra.Command {
	var (
		configPath    string
		defaultConfig bool
		minConfig     bool
		showVersion   bool
		logFlags      LogFlags
	)
	cmd := &cobra.Command{
		Use:           d.Name,
		Short:         d.Short,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			switch {
			case showVersion:
				_, err := fmt.Fprintf(out, "%s %s\n", d.Name, version.Get())
				return err
			case defaultConfig:
				return writeYAML(out, d.Defaults())
			case minConfig:
				_, err := out.Write(d.Minimal())
				return err
			}
			log, err := logFlags.Logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg, err := d.load(configPath)
			if err != nil {
				return err
			}
			log.Info("starting", "binary", d.Name, "version", version.Get().GitVersion, "config", configPath)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return d.Run(ctx, cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "path to the "+d.Meta.Kind+" configuration file (YAML); without it the defaults apply")
	f.BoolVar(&defaultConfig, "defaultconfig", false, "print the full default configuration and exit")
	if d.Minimal != nil {
		f.BoolVar(&minConfig, "minconfig", false, "print a minimal configuration (the keys usually set, with <placeholders> to fill in) and exit")
		cmd.MarkFlagsMutuallyExclusive("defaultconfig", "minconfig")
	}
	f.BoolVar(&showVersion, "version", false, "print version, git commit and build date and exit")
	logFlags.AddFlags(f)
	return cmd
}

func (d Daemon[C]) load(path string) (C, error) {
	cfg := d.Defaults()
	if path != "" {
		if err := configfile.Load(path, d.Meta, cfg); err != nil {
			return cfg, err
		}
	}
	if err := cfg.Validate(); err != nil {
		src := path
		if src == "" {
			src = "the defaults"
		}
		return cfg, fmt.Errorf("configuration %s is invalid: %w", src, err)
	}
	return cfg, nil
}

func writeYAML(w io.Writer, cfg any) error {
	b, err := configfile.Marshal(cfg)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Main executes cmd and exits with status 1 and a one-line error on failure.
func Main(cmd *cobra.Command) {
	if err := cmd.Execute(); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.Name(), err)
		klog.Flush()
		os.Exit(1)
	}
}
