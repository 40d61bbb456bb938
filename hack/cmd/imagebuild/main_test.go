package main

import (
	"archive/tar"
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestParseFlagsImages(t *testing.T) {
	o, err := parseFlags([]string{"--registry", "", "--out-dir", t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pause", "busybox", "skerry-demo", "virtual-mapper", "modbus-mapper", "cloudcore"}
	if !slices.Equal(o.images, want) {
		t.Errorf("default images %q, want %q", o.images, want)
	}

	o, err = parseFlags([]string{"--images", " modbus-mapper, virtual-mapper,", "--modbus-mapper-bin", "/m", "--virtual-mapper-bin", "/v"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.images, []string{"modbus-mapper", "virtual-mapper"}) || o.modbusMapperBin != "/m" || o.virtualMapperBin != "/v" {
		t.Errorf("images %q modbus %q virtual %q", o.images, o.modbusMapperBin, o.virtualMapperBin)
	}

	_, err = parseFlags([]string{"--images", "pause,mapper"})
	if err == nil || !strings.Contains(err.Error(), `"mapper"`) || !strings.Contains(err.Error(), "modbus-mapper") {
		t.Errorf("unknown image: err %v, want one naming it and the known images", err)
	}
}

func TestMapperSpecs(t *testing.T) {
	o := &options{demoVersion: "9.8.7"}
	for _, tc := range []struct{ key, repo, public string }{
		{"virtual-mapper", "library/virtual-mapper", "docker.io/library/virtual-mapper"},
		{"modbus-mapper", "library/modbus-mapper", "docker.io/library/modbus-mapper"},
	} {
		s := specByKey(t, o, tc.key)
		if s.repo != tc.repo || !slices.Equal(s.public, []string{tc.public}) {
			t.Errorf("%s: repo %q public %q, want %q %q", tc.key, s.repo, s.public, tc.repo, tc.public)
		}
		if !slices.Equal(s.tags, []string{"9.8.7", "latest"}) {
			t.Errorf("%s: tags %q, want the demo version and latest", tc.key, s.tags)
		}
	}
}

func TestMapperImage(t *testing.T) {
	dir := t.TempDir()
	o := &options{
		created:          testTime,
		demoVersion:      "0.1.0",
		virtualMapperBin: writeBin(t, dir, "virtual-mapper", "virtual binary"),
		modbusMapperBin:  writeBin(t, dir, "modbus-mapper", "modbus binary"),
	}
	digests := map[string]v1.Hash{}
	for _, tc := range []struct{ key, content string }{
		{"virtual-mapper", "virtual binary"},
		{"modbus-mapper", "modbus binary"},
	} {
		s := specByKey(t, o, tc.key)
		img, err := s.build(o)
		if err != nil {
			t.Fatalf("%s: %v", tc.key, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{"/" + tc.key}) || len(cf.Config.Cmd) != 0 {
			t.Errorf("%s: entrypoint %q cmd %q, want just /%s", tc.key, cf.Config.Entrypoint, cf.Config.Cmd, tc.key)
		}
		if cf.Config.User != "" || !cf.Created.Time.Equal(testTime) || cf.OS != "linux" {
			t.Errorf("%s: user %q created %v os %q", tc.key, cf.Config.User, cf.Created, cf.OS)
		}

		entries := layerEntries(t, img)
		bin, ok := entries[tc.key]
		if !ok || bin.hdr.Typeflag != tar.TypeReg || bin.hdr.Mode != 0o755 || string(bin.data) != tc.content {
			t.Errorf("%s: binary entry %+v", tc.key, bin.hdr)
		}
		if e, ok := entries["etc/kubeedge/"]; !ok || e.hdr.Typeflag != tar.TypeDir {
			t.Errorf("%s: no /etc/kubeedge directory for the DMI socket mount", tc.key)
		}
		if e, ok := entries["tmp/"]; !ok || e.hdr.Mode != 0o1777 {
			t.Errorf("%s: no /tmp with mode 1777", tc.key)
		}

		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.build(o)
		if err != nil {
			t.Fatal(err)
		}
		if d2, err := again.Digest(); err != nil || d2 != d {
			t.Errorf("%s: digest %s then %s (%v), want the same", tc.key, d, d2, err)
		}
		digests[tc.key] = d
	}
	if digests["virtual-mapper"] == digests["modbus-mapper"] {
		t.Error("the two mapper images have the same digest")
	}
}

func TestMapperImageNeedsBinary(t *testing.T) {
	o := &options{created: testTime, modbusMapperBin: filepath.Join(t.TempDir(), "missing")}
	if _, err := specByKey(t, o, "virtual-mapper").build(o); err == nil || !strings.Contains(err.Error(), "--virtual-mapper-bin") {
		t.Errorf("no binary: err %v, want one naming --virtual-mapper-bin", err)
	}
	if _, err := specByKey(t, o, "modbus-mapper").build(o); err == nil {
		t.Error("missing binary file accepted")
	}
}

// TestRunWritesMapperArchives checks that an archive names the image by its public name, the way
// containerd would pull it through the docker.io mirror.
func TestRunWritesMapperArchives(t *testing.T) {
	dir := t.TempDir()
	o := &options{
		created:          testTime,
		demoVersion:      "0.1.0",
		images:           []string{"virtual-mapper", "modbus-mapper"},
		virtualMapperBin: writeBin(t, dir, "virtual-mapper", "v"),
		modbusMapperBin:  writeBin(t, dir, "modbus-mapper", "m"),
		outDir:           filepath.Join(dir, "out"),
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := run(t.Context(), log, o, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"virtual-mapper", "modbus-mapper"} {
		for _, tag := range []string{"0.1.0", "latest"} {
			ref, err := name.NewTag("docker.io/library/" + key + ":" + tag)
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(filepath.Join(o.outDir, key+".tar"), &ref)
			if err != nil {
				t.Fatalf("%s: %v", ref, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cf.Config.Entrypoint, []string{"/" + key}) {
				t.Errorf("%s: entrypoint %q", ref, cf.Config.Entrypoint)
			}
		}
	}
}

func specByKey(t *testing.T, o *options, key string) imageSpec {
	t.Helper()
	for _, s := range specs(o) {
		if s.key == key {
			return s
		}
	}
	t.Fatalf("no image %q", key)
	return imageSpec{}
}

func writeBin(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func layerEntries(t *testing.T, img v1.Image) map[string]tarEntry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		t.Fatal(err)
	}
	entries := map[string]tarEntry{}
	for _, e := range readTar(t, buf.Bytes()) {
		entries[e.hdr.Name] = e
	}
	return entries
}

func TestCloudcoreImage(t *testing.T) {
	dir := t.TempDir()
	o := &options{created: testTime, cloudcoreBin: writeBin(t, dir, "cloudcore", "cloudcore binary"), cloudcoreVersion: "v0.0.0-abc-dirty"}
	s := specByKey(t, o, "cloudcore")
	if s.repo != "skerry/cloudcore" || !slices.Equal(s.tags, []string{"v0.0.0-abc-dirty", "latest"}) {
		t.Errorf("repo %q tags %q", s.repo, s.tags)
	}
	img, err := s.build(o)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/cloudcore"}) || cf.Config.User != "65532:65532" || cf.Config.Labels["org.opencontainers.image.version"] != "v0.0.0-abc-dirty" {
		t.Errorf("config %+v", cf.Config)
	}
	entries := layerEntries(t, img)
	if e, ok := entries["cloudcore"]; !ok || e.hdr.Mode != 0o755 || string(e.data) != "cloudcore binary" {
		t.Errorf("layer entries %v", entries)
	}

	for _, bad := range []*options{
		{created: testTime, cloudcoreBin: o.cloudcoreBin},
		{created: testTime, cloudcoreBin: o.cloudcoreBin, cloudcoreVersion: "v1+build"},
		{created: testTime, cloudcoreVersion: "v1"},
	} {
		if _, err := specByKey(t, bad, "cloudcore").build(bad); err == nil {
			t.Errorf("built with %+v", bad)
		}
	}
}
