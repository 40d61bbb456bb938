// Package imagegc removes unused images when the runtime's image file system fills up, as
// the kubelet's image garbage collector does: above HighThresholdPercent of the disk it removes
// images no container uses, the longest unused first, until usage is below
// LowThresholdPercent. An image is never removed within MinAge of being seen unused, nor when
// the runtime pins it, nor when it is the runtime's sandbox (pause) image: an edge node may
// have no registry to pull it from again.
package imagegc

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// Defaults, the kubelet's.
const (
	DefaultHighThresholdPercent = 85
	DefaultLowThresholdPercent  = 80
	DefaultMinAge               = 2 * time.Minute
	DefaultPeriod               = 5 * time.Minute
)

// callTimeout bounds each runtime call.
const callTimeout = 30 * time.Second

// Config configures a GC. Zero numbers take the defaults.
type Config struct {
	Runtime runtimeapi.RuntimeServiceClient
	Images  runtimeapi.ImageServiceClient
	// HighThresholdPercent and LowThresholdPercent of the image file system's capacity.
	HighThresholdPercent, LowThresholdPercent int
	MinAge, Period                            time.Duration
	// Keep are image references never removed, besides pinned and sandbox images.
	Keep []string
	// Statfs returns the capacity and free bytes of the file system at path (tests replace it).
	Statfs func(path string) (total, free uint64, err error)
	Clock  clock.WithTicker
	Logger *slog.Logger
}

// GC is the image garbage collector.
type GC struct {
	cfg Config
	log *slog.Logger
	// unusedSince is when each image was first seen unused; owned by the caller of Collect.
	unusedSince map[string]time.Time
}

// New checks cfg and returns a GC.
func New(cfg Config) (*GC, error) {
	if cfg.Runtime == nil || cfg.Images == nil {
		return nil, errors.New("imagegc: Runtime and Images are required")
	}
	if cfg.HighThresholdPercent == 0 {
		cfg.HighThresholdPercent = DefaultHighThresholdPercent
	}
	if cfg.LowThresholdPercent == 0 {
		cfg.LowThresholdPercent = DefaultLowThresholdPercent
	}
	if cfg.HighThresholdPercent > 100 || cfg.LowThresholdPercent < 0 || cfg.LowThresholdPercent > cfg.HighThresholdPercent {
		return nil, fmt.Errorf("imagegc: thresholds low %d%% and high %d%%: want 0 <= low <= high <= 100",
			cfg.LowThresholdPercent, cfg.HighThresholdPercent)
	}
	if cfg.MinAge == 0 {
		cfg.MinAge = DefaultMinAge
	}
	if cfg.Period == 0 {
		cfg.Period = DefaultPeriod
	}
	if cfg.Statfs == nil {
		cfg.Statfs = statfs
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &GC{cfg: cfg, log: cfg.Logger, unusedSince: make(map[string]time.Time)}, nil
}

// Run collects every Period until ctx ends.
func (g *GC) Run(ctx context.Context) error {
	t := g.cfg.Clock.NewTicker(g.cfg.Period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
		if freed, err := g.Collect(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("image garbage collection failed", "err", err)
		} else if freed > 0 {
			g.log.Info("removed unused images", "freedBytes", freed)
		}
	}
}

// Collect does one round and returns the bytes it freed.
func (g *GC) Collect(ctx context.Context) (freed uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	images, err := g.cfg.Images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return 0, fmt.Errorf("imagegc: ListImages: %w", err)
	}
	inUse, err := g.inUse(ctx)
	if err != nil {
		return 0, err
	}
	now := g.cfg.Clock.Now()
	seen := make(map[string]bool, len(images.Images))
	var candidates []*runtimeapi.Image
	for _, im := range images.Images {
		seen[im.Id] = true
		if inUse[im.Id] || g.kept(im, inUse) {
			delete(g.unusedSince, im.Id)
			continue
		}
		if _, ok := g.unusedSince[im.Id]; !ok {
			g.unusedSince[im.Id] = now
		}
		candidates = append(candidates, im)
	}
	for id := range g.unusedSince {
		if !seen[id] {
			delete(g.unusedSince, id)
		}
	}

	need, err := g.bytesToFree(ctx)
	if err != nil || need == 0 {
		return 0, err
	}
	// Longest unused first; among equals, the largest (fewer removals).
	slices.SortFunc(candidates, func(a, b *runtimeapi.Image) int {
		if c := g.unusedSince[a.Id].Compare(g.unusedSince[b.Id]); c != 0 {
			return c
		}
		return cmp.Compare(b.Size, a.Size)
	})
	var errs []error
	for _, im := range candidates {
		if freed >= need {
			break
		}
		if now.Sub(g.unusedSince[im.Id]) < g.cfg.MinAge {
			continue
		}
		if _, err := g.cfg.Images.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: im.Id}}); err != nil {
			errs = append(errs, fmt.Errorf("removing %s %v: %w", im.Id, im.RepoTags, err))
			continue
		}
		g.log.Info("removed unused image", "image", im.Id, "tags", im.RepoTags, "size", im.Size)
		delete(g.unusedSince, im.Id)
		freed += im.Size
	}
	if freed < need && len(errs) == 0 {
		g.log.Warn("image file system still above the threshold: not enough unused images to remove",
			"wantedBytes", need, "freedBytes", freed)
	}
	return freed, errors.Join(errs...)
}

// inUse returns the ids of images some container (running or exited) uses.
func (g *GC) inUse(ctx context.Context) (map[string]bool, error) {
	cs, err := g.cfg.Runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("imagegc: ListContainers: %w", err)
	}
	used := make(map[string]bool, len(cs.Containers))
	for _, c := range cs.Containers {
		used[c.ImageRef] = true
		if c.Image != nil {
			used[c.Image.Image] = true
		}
	}
	return used, nil
}

// kept reports whether an image must stay: pinned by the runtime, the runtime's sandbox
// image, or listed in Keep.
func (g *GC) kept(im *runtimeapi.Image, inUse map[string]bool) bool {
	if im.Pinned {
		return true
	}
	keep := slices.Clone(g.cfg.Keep)
	if s := g.sandboxImage(); s != "" {
		keep = append(keep, s)
	}
	for _, name := range append(slices.Clone(im.RepoTags), im.RepoDigests...) {
		if slices.Contains(keep, name) || inUse[name] {
			return true
		}
	}
	return false
}

// sandboxImage asks the runtime for its pause image (containerd reports its CRI config in
// the verbose status); "" if it does not say.
func (g *GC) sandboxImage() string {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	st, err := g.cfg.Runtime.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		return ""
	}
	var cfg struct {
		SandboxImage string `json:"sandboxImage"`
	}
	if json.Unmarshal([]byte(st.GetInfo()["config"]), &cfg) != nil {
		return ""
	}
	return cfg.SandboxImage
}

// bytesToFree is how much must go to bring the image file system from above the high
// threshold down to the low one; 0 when it is below the high threshold.
func (g *GC) bytesToFree(ctx context.Context) (uint64, error) {
	fs, err := g.cfg.Images.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil {
		return 0, fmt.Errorf("imagegc: ImageFsInfo: %w", err)
	}
	if len(fs.ImageFilesystems) == 0 || fs.ImageFilesystems[0].FsId == nil {
		return 0, errors.New("imagegc: the runtime reports no image file system")
	}
	total, free, err := g.cfg.Statfs(fs.ImageFilesystems[0].FsId.Mountpoint)
	if err != nil {
		return 0, fmt.Errorf("imagegc: %w", err)
	}
	if total == 0 {
		return 0, nil
	}
	used := total - free
	if used*100 < total*uint64(g.cfg.HighThresholdPercent) {
		return 0, nil
	}
	target := total * uint64(g.cfg.LowThresholdPercent) / 100
	return used - target, nil
}

func statfs(path string) (total, free uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Blocks * uint64(st.Bsize), st.Bavail * uint64(st.Bsize), nil
}
