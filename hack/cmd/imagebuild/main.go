// Command imagebuild builds the images the local runtime needs (pause, busybox, skerry-demo, the
// virtual and modbus mappers, and cloudcore for keadm init --mode cluster) from binaries on this
// machine, reproducibly, and pushes them to a plain-HTTP registry and/or writes them as
// docker-archive tarballs. No daemon and no public registry are involved.
//
// Reproducible means: the same binaries give the same digests on every run, so a warm run only
// HEADs the manifests it would push and returns in about a second.
//
//	imagebuild --pause-bin _output/bin/pause --demo-bin _output/bin/skerry-demo \
//	  --virtual-mapper-bin _output/bin/virtual-mapper --modbus-mapper-bin _output/bin/modbus-mapper \
//	  --cloudcore-bin _output/bin/cloudcore --cloudcore-version "$(_output/bin/cloudcore --version | cut -d' ' -f2)"
//	imagebuild --images busybox --registry '' --out-dir /tmp/archives
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// defaultCreatedUnix (2025-01-01T00:00:00Z) is the creation time stamped on every image and file
// unless SOURCE_DATE_EPOCH says otherwise; any fixed value works, it only has to stay the same.
const defaultCreatedUnix = 1735689600

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

type options struct {
	registry         string
	images           []string
	pauseBin         string
	demoBin          string
	busyboxBin       string
	virtualMapperBin string
	modbusMapperBin  string
	cloudcoreBin     string
	demoVersion      string
	// cloudcoreVersion tags the cloudcore image: the version keadm built from the same tree
	// asks for (cloudinstall.DefaultImage).
	cloudcoreVersion string
	outDir           string
	created          time.Time
	timeout          time.Duration
}

// imageSpec is one image: where it lives in the local registry, the public names it stands in for
// (containerd's registry mirrors map those to the local registry), and how to build it.
type imageSpec struct {
	key    string   // name on the command line
	repo   string   // repository path in the registry, e.g. library/busybox
	tags   []string // every tag is pushed
	public []string // public repositories it stands in for, used as names in archives
	build  func(*options) (v1.Image, error)
}

func specs(o *options) []imageSpec {
	return []imageSpec{
		{
			key: "pause", repo: "pause", tags: []string{"3.10"},
			public: []string{"registry.k8s.io/pause"},
			build:  buildPause,
		},
		{
			key: "busybox", repo: "library/busybox", tags: []string{"1.35", "latest"},
			public: []string{"docker.io/library/busybox"},
			build:  buildBusybox,
		},
		{
			key: "skerry-demo", repo: "library/skerry-demo", tags: []string{o.demoVersion, "latest"},
			public: []string{"docker.io/library/skerry-demo"},
			build:  buildDemo,
		},
		{
			key: "virtual-mapper", repo: "library/virtual-mapper", tags: []string{o.demoVersion, "latest"},
			public: []string{"docker.io/library/virtual-mapper"},
			build: func(o *options) (v1.Image, error) {
				return buildMapper(o, "virtual-mapper", o.virtualMapperBin, "--virtual-mapper-bin")
			},
		},
		{
			key: "modbus-mapper", repo: "library/modbus-mapper", tags: []string{o.demoVersion, "latest"},
			public: []string{"docker.io/library/modbus-mapper"},
			build: func(o *options) (v1.Image, error) {
				return buildMapper(o, "modbus-mapper", o.modbusMapperBin, "--modbus-mapper-bin")
			},
		},
		{
			// Not a stand-in for a public image: keadm init refers to it by this registry's name.
			key: "cloudcore", repo: "skerry/cloudcore", tags: []string{o.cloudcoreVersion, "latest"},
			public: []string{"127.0.0.1:5000/skerry/cloudcore"},
			build:  buildCloudcore,
		},
	}
}

// imageKeys lists every image this program knows, in build order.
func imageKeys() []string {
	var keys []string
	for _, s := range specs(&options{}) {
		keys = append(keys, s.key)
	}
	return keys
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "imagebuild:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := run(ctx, log, o, os.Stdout); err != nil {
		log.Error("imagebuild failed", "err", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("imagebuild", flag.ContinueOnError)
	o := &options{}
	var images string
	fs.StringVar(&o.registry, "registry", "127.0.0.1:5000", "registry (host:port, plain HTTP) to push to; empty to skip pushing")
	fs.StringVar(&images, "images", strings.Join(imageKeys(), ","), "comma-separated images to build")
	fs.StringVar(&o.pauseBin, "pause-bin", "", "static pause binary (required for the pause image)")
	fs.StringVar(&o.demoBin, "demo-bin", "", "static skerry-demo binary (required for the skerry-demo image)")
	fs.StringVar(&o.busyboxBin, "busybox-bin", "/bin/busybox", "static busybox binary (Debian busybox-static)")
	fs.StringVar(&o.virtualMapperBin, "virtual-mapper-bin", "", "static virtual-mapper binary (required for the virtual-mapper image)")
	fs.StringVar(&o.modbusMapperBin, "modbus-mapper-bin", "", "static modbus-mapper binary (required for the modbus-mapper image)")
	fs.StringVar(&o.cloudcoreBin, "cloudcore-bin", "", "static cloudcore binary (required for the cloudcore image)")
	fs.StringVar(&o.cloudcoreVersion, "cloudcore-version", "", "tag for the cloudcore image besides latest: the version cloudcore --version prints (required for the cloudcore image)")
	fs.StringVar(&o.demoVersion, "demo-version", "0.1.0", "tag for the skerry-demo and mapper images besides latest")
	fs.StringVar(&o.outDir, "out-dir", "", "also write each image as a docker-archive <image>.tar here (for ctr images import)")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "overall deadline")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.created = time.Unix(defaultCreatedUnix, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		o.created = time.Unix(sec, 0).UTC()
	}
	known := imageKeys()
	for _, img := range strings.Split(images, ",") {
		img = strings.TrimSpace(img)
		if img == "" {
			continue
		}
		if !slices.Contains(known, img) {
			return nil, fmt.Errorf("unknown image %q (want one of %s)", img, strings.Join(known, ", "))
		}
		o.images = append(o.images, img)
	}
	if o.registry == "" && o.outDir == "" {
		return nil, errors.New("nothing to do: set --registry and/or --out-dir")
	}
	return o, nil
}

type result struct {
	spec   imageSpec
	img    v1.Image
	digest v1.Hash
	err    error
}

func run(ctx context.Context, log *slog.Logger, o *options, stdout io.Writer) error {
	start := time.Now()
	var todo []imageSpec
	for _, s := range specs(o) {
		if slices.Contains(o.images, s.key) {
			todo = append(todo, s)
		}
	}

	// Building is mostly gzip: do the images side by side.
	results := make([]result, len(todo))
	var wg sync.WaitGroup
	for i, s := range todo {
		wg.Go(func() {
			t := time.Now()
			r := result{spec: s}
			r.img, r.err = s.build(o)
			if r.err == nil {
				r.digest, r.err = r.img.Digest()
			}
			if r.err != nil {
				r.err = fmt.Errorf("build %s: %w", s.key, r.err)
			} else {
				log.Info("built", "image", s.key, "digest", r.digest.String(), "took", time.Since(t).Round(time.Millisecond))
			}
			results[i] = r
		})
	}
	wg.Wait()
	var errs []error
	for _, r := range results {
		errs = append(errs, r.err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	for _, r := range results {
		if o.outDir != "" {
			if err := writeArchive(o, r); err != nil {
				return err
			}
			log.Info("wrote archive", "image", r.spec.key, "path", archivePath(o, r.spec))
		}
		if o.registry != "" {
			if err := push(ctx, log, o, r); err != nil {
				return err
			}
			for _, tag := range r.spec.tags {
				fmt.Fprintf(stdout, "%s/%s:%s@%s\n", o.registry, r.spec.repo, tag, r.digest)
			}
		}
	}
	log.Info("done", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithUserAgent("skerry-imagebuild")}
}

// push writes the image under every tag that does not already point at its digest. The registry
// stores blobs by digest, so remote.Write also skips layers it already has.
func push(ctx context.Context, log *slog.Logger, o *options, r result) error {
	t := time.Now()
	var stale []name.Tag
	for _, tag := range r.spec.tags {
		ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", o.registry, r.spec.repo, tag), name.Insecure)
		if err != nil {
			return err
		}
		desc, err := remote.Head(ref, remoteOptions(ctx)...)
		var terr *transport.Error
		switch {
		case err == nil && desc.Digest == r.digest:
			continue
		case err == nil, errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
			stale = append(stale, ref)
		default:
			return fmt.Errorf("HEAD %s: %w", ref, err)
		}
	}
	if len(stale) == 0 {
		log.Info("up to date", "image", r.spec.key, "repo", o.registry+"/"+r.spec.repo)
		return nil
	}
	if err := remote.Write(stale[0], r.img, remoteOptions(ctx)...); err != nil {
		return fmt.Errorf("push %s: %w", stale[0], err)
	}
	for _, ref := range stale[1:] {
		if err := remote.Tag(ref, r.img, remoteOptions(ctx)...); err != nil {
			return fmt.Errorf("tag %s: %w", ref, err)
		}
	}
	log.Info("pushed", "image", r.spec.key, "tags", len(stale), "took", time.Since(t).Round(time.Millisecond))
	return nil
}

func archivePath(o *options, s imageSpec) string {
	return filepath.Join(o.outDir, s.key+".tar")
}

// writeArchive writes a docker-archive tarball naming the image by its public names, so that
// `ctr -n k8s.io images import` makes it available exactly as a pull through the mirror would.
func writeArchive(o *options, r result) error {
	refs := map[name.Reference]v1.Image{}
	for _, repo := range r.spec.public {
		for _, tag := range r.spec.tags {
			ref, err := name.NewTag(repo + ":" + tag)
			if err != nil {
				return err
			}
			refs[ref] = r.img
		}
	}
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return err
	}
	// Write next to the target and rename, so a reader never sees half an archive.
	final := archivePath(o, r.spec)
	tmp := final + ".tmp"
	if err := tarball.MultiRefWriteToFile(tmp, refs); err != nil {
		return fmt.Errorf("write %s: %w", final, err)
	}
	return os.Rename(tmp, final)
}

func buildPause(o *options) (v1.Image, error) {
	if o.pauseBin == "" {
		return nil, errors.New("--pause-bin is required")
	}
	bin, err := os.ReadFile(o.pauseBin)
	if err != nil {
		return nil, err
	}
	fs, err := singleBinaryRootFS(o.created, "pause", bin)
	if err != nil {
		return nil, err
	}
	return image(o, fs, v1.Config{
		Entrypoint: []string{"/pause"},
		Env:        []string{defaultPath},
		WorkingDir: "/",
	})
}

func buildBusybox(o *options) (v1.Image, error) {
	bin, err := os.ReadFile(o.busyboxBin)
	if err != nil {
		return nil, fmt.Errorf("%w (install busybox-static)", err)
	}
	out, err := exec.Command(o.busyboxBin, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", o.busyboxBin, err)
	}
	fs, err := busyboxRootFS(o.created, bin, strings.Fields(string(out)))
	if err != nil {
		return nil, err
	}
	return image(o, fs, v1.Config{
		Cmd:        []string{"sh"},
		Env:        []string{defaultPath},
		WorkingDir: "/",
	})
}

func buildDemo(o *options) (v1.Image, error) {
	if o.demoBin == "" {
		return nil, errors.New("--demo-bin is required")
	}
	bin, err := os.ReadFile(o.demoBin)
	if err != nil {
		return nil, err
	}
	fs, err := singleBinaryRootFS(o.created, "skerry-demo", bin)
	if err != nil {
		return nil, err
	}
	// Runs as root on purpose: a ConfigMap or Secret mounted with a restrictive defaultMode must
	// stay readable to the demo.
	return image(o, fs, v1.Config{
		Entrypoint:   []string{"/skerry-demo"},
		Env:          []string{defaultPath, "PORT=8080"},
		ExposedPorts: map[string]struct{}{"8080/tcp": {}},
		WorkingDir:   "/",
		Labels:       map[string]string{"org.opencontainers.image.version": o.demoVersion},
	})
}

// buildCloudcore builds cloudcore's image for keadm init --mode cluster: the static binary as
// entrypoint, run as an unprivileged user. cloudcore keeps its state in Secrets and logs to
// stderr, so it needs no writable file system; the config comes from a mounted ConfigMap.
func buildCloudcore(o *options) (v1.Image, error) {
	if o.cloudcoreBin == "" {
		return nil, errors.New("--cloudcore-bin is required")
	}
	if _, err := name.NewTag("127.0.0.1:5000/skerry/cloudcore:"+o.cloudcoreVersion, name.StrictValidation); err != nil || o.cloudcoreVersion == "" {
		return nil, fmt.Errorf("--cloudcore-version %q: want a valid image tag", o.cloudcoreVersion)
	}
	bin, err := os.ReadFile(o.cloudcoreBin)
	if err != nil {
		return nil, err
	}
	fs, err := singleBinaryRootFS(o.created, "cloudcore", bin)
	if err != nil {
		return nil, err
	}
	return image(o, fs, v1.Config{
		Entrypoint: []string{"/cloudcore"},
		Env:        []string{defaultPath},
		WorkingDir: "/",
		User:       "65532:65532",
		ExposedPorts: map[string]struct{}{
			"10000/tcp": {}, "10001/udp": {}, "10002/tcp": {}, "10005/tcp": {},
		},
		Labels: map[string]string{"org.opencontainers.image.version": o.cloudcoreVersion},
	})
}

// buildMapper builds a DMI mapper image: the static binary at /<name> as entrypoint, run with the
// mapper's default flags. Those put both the edge's DMI socket and the mapper's own socket in
// /etc/kubeedge, the directory a mapper pod mounts from the host; the image ships it empty so
// the container also starts without that mount. binFlag names the flag that gives bin.
func buildMapper(o *options, name, bin, binFlag string) (v1.Image, error) {
	if bin == "" {
		return nil, fmt.Errorf("%s is required", binFlag)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	fs, err := singleBinaryRootFS(o.created, name, data)
	if err != nil {
		return nil, err
	}
	if err := fs.Dir("/etc/kubeedge", 0o755); err != nil {
		return nil, err
	}
	// Runs as root: the edge creates the DMI socket as root, and connecting to a unix socket
	// needs write permission on it.
	return image(o, fs, v1.Config{
		Entrypoint: []string{"/" + name},
		Env:        []string{defaultPath},
		WorkingDir: "/",
		Labels:     map[string]string{"org.opencontainers.image.version": o.demoVersion},
	})
}

// image wraps one layer built from fs into a single-layer image with a fixed creation time.
func image(o *options, fs *rootFS, cfg v1.Config) (v1.Image, error) {
	data, err := fs.Tar()
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: o.created}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: created, CreatedBy: "skerry imagebuild", Comment: "built from local binaries"},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.Architecture = runtime.GOARCH
	cf.OS = "linux"
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}
