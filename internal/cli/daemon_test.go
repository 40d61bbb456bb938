package cli

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skerry-io/skerry/pkg/configfile"
	"github.com/skerry-io/skerry/pkg/version"
)

type fakeConfig struct {
	configfile.TypeMeta `json:",inline"`
	Port                int `json:"port"`
}

func (c *fakeConfig) Validate() error {
	if c.Port <= 0 {
		return errors.New("port: want > 0")
	}
	return nil
}

var fakeMeta = configfile.TypeMeta{APIVersion: "fake.config.skerry.io/v1alpha1", Kind: "Fake"}

const fakeMinimal = "apiVersion: fake.config.skerry.io/v1alpha1\nkind: Fake\nport: <port>\n"

// run executes the fake daemon with args and returns what it printed and the config Run saw.
func run(t *testing.T, args ...string) (stdout string, got *fakeConfig, err error) {
	t.Helper()
	return runDaemon(t, func() []byte { return []byte(fakeMinimal) }, args...)
}

func runDaemon(t *testing.T, minimal func() []byte, args ...string) (stdout string, got *fakeConfig, err error) {
	t.Helper()
	d := Daemon[*fakeConfig]{
		Name:     "fakecore",
		Meta:     fakeMeta,
		Defaults: func() *fakeConfig { return &fakeConfig{TypeMeta: fakeMeta, Port: 10} },
		Minimal:  minimal,
		Run: func(_ context.Context, cfg *fakeConfig, _ *slog.Logger) error {
			got = cfg
			return nil
		},
	}
	cmd := d.Command()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), got, err
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionFlag(t *testing.T) {
	out, got, err := run(t, "--version")
	if err != nil || got != nil {
		t.Fatalf("err %v, ran %v", err, got)
	}
	if want := "fakecore " + version.Get().String() + "\n"; out != want {
		t.Fatalf("--version printed %q, want %q", out, want)
	}
}

func TestDefaultConfigLoadsBack(t *testing.T) {
	out, got, err := run(t, "--defaultconfig")
	if err != nil || got != nil {
		t.Fatalf("err %v, ran %v", err, got)
	}
	_, got, err = run(t, "--config", writeFile(t, out))
	if err != nil {
		t.Fatalf("--defaultconfig output does not load: %v\n%s", err, out)
	}
	if got.Port != 10 {
		t.Fatalf("got %+v", got)
	}
}

func TestConfigOverridesDefaults(t *testing.T) {
	_, got, err := run(t, "--config", writeFile(t, "apiVersion: fake.config.skerry.io/v1alpha1\nkind: Fake\nport: 99\n"))
	if err != nil || got == nil || got.Port != 99 {
		t.Fatalf("err %v, got %+v", err, got)
	}
}

func TestBadConfigIsRefusedBeforeRun(t *testing.T) {
	for name, tc := range map[string]struct{ content, want string }{
		"unknown key": {"apiVersion: fake.config.skerry.io/v1alpha1\nkind: Fake\nprot: 1\n", `unknown field "prot"`},
		"invalid":     {"apiVersion: fake.config.skerry.io/v1alpha1\nkind: Fake\nport: -1\n", "is invalid: port"},
		"wrong kind":  {"apiVersion: v1\nkind: Pod\n", `kind "Pod"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, got, err := run(t, "--config", writeFile(t, tc.content))
			if got != nil {
				t.Fatal("Run was called with a bad configuration")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if _, _, err := run(t, "--config", "/nonexistent.yaml"); err == nil || !strings.Contains(err.Error(), "/nonexistent.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestLogFlagsRejectUnknownValues(t *testing.T) {
	if _, _, err := run(t, "--log-format", "xml"); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("--log-format xml: %v", err)
	}
	if _, _, err := run(t, "--log-level", "loud"); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("--log-level loud: %v", err)
	}
	if _, got, err := run(t, "--log-format", "json", "--log-level", "debug"); err != nil || got == nil {
		t.Fatalf("json/debug: %v", err)
	}
}

func TestMinConfigPrintsTheMinimalDocument(t *testing.T) {
	out, got, err := run(t, "--minconfig")
	if err != nil || got != nil {
		t.Fatalf("err %v, ran %v", err, got)
	}
	if out != fakeMinimal {
		t.Fatalf("--minconfig printed %q, want %q", out, fakeMinimal)
	}
	_, got, err = run(t, "--config", writeFile(t, strings.Replace(out, "<port>", "77", 1)))
	if err != nil || got == nil || got.Port != 77 {
		t.Fatalf("filled --minconfig output: err %v, got %+v", err, got)
	}
	if _, got, err := run(t, "--minconfig", "--defaultconfig"); err == nil || got != nil || !strings.Contains(err.Error(), "minconfig") {
		t.Fatalf("--minconfig with --defaultconfig: err %v, ran %v", err, got)
	}
	// A daemon without a minimal configuration has no such flag.
	if _, got, err := runDaemon(t, nil, "--minconfig"); err == nil || got != nil || !strings.Contains(err.Error(), "unknown flag") {
		t.Fatalf("--minconfig without Minimal: err %v, ran %v", err, got)
	}
}
