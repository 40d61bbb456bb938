package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestStringNamesEveryField(t *testing.T) {
	i := Info{GitVersion: "v1.2.3", GitCommit: "abc123", BuildDate: "2026-01-02T03:04:05Z", GoVersion: "go1.26", Platform: "linux/arm64"}
	s := i.String()
	for _, want := range []string{"v1.2.3", "abc123", "2026-01-02T03:04:05Z", "go1.26", "linux/arm64"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, missing %q", s, want)
		}
	}
}

func TestGetReportsRuntime(t *testing.T) {
	i := Get()
	if i.GoVersion != runtime.Version() || i.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("Get() = %+v, want the running Go version and platform", i)
	}
	if i.GitVersion == "" || i.GitCommit == "" || i.BuildDate == "" {
		t.Fatalf("Get() = %+v, want no empty field", i)
	}
}
