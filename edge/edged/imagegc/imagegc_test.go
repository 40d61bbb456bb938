package imagegc

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

type fakeRuntime struct {
	runtimeapi.RuntimeServiceClient
	containers []*runtimeapi.Container
	config     string
}

func (f *fakeRuntime) ListContainers(context.Context, *runtimeapi.ListContainersRequest, ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{Containers: f.containers}, nil
}

func (f *fakeRuntime) Status(context.Context, *runtimeapi.StatusRequest, ...grpc.CallOption) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Info: map[string]string{"config": f.config}}, nil
}

type fakeImages struct {
	runtimeapi.ImageServiceClient
	mu      sync.Mutex
	images  []*runtimeapi.Image
	removed []string
}

func (f *fakeImages) ListImages(context.Context, *runtimeapi.ListImagesRequest, ...grpc.CallOption) (*runtimeapi.ListImagesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &runtimeapi.ListImagesResponse{Images: slices.Clone(f.images)}, nil
}

func (f *fakeImages) RemoveImage(_ context.Context, r *runtimeapi.RemoveImageRequest, _ ...grpc.CallOption) (*runtimeapi.RemoveImageResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, r.Image.Image)
	f.images = slices.DeleteFunc(f.images, func(im *runtimeapi.Image) bool { return im.Id == r.Image.Image })
	return &runtimeapi.RemoveImageResponse{}, nil
}

func (f *fakeImages) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest, ...grpc.CallOption) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: "/images"}}}}, nil
}

const mb = 1 << 20

func TestCollectRemovesUnusedImagesOnlyAboveTheThreshold(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	rt := &fakeRuntime{
		containers: []*runtimeapi.Container{{ImageRef: "sha256:used"}},
		config:     `{"sandboxImage":"registry.k8s.io/pause:3.10"}`,
	}
	ims := &fakeImages{images: []*runtimeapi.Image{
		{Id: "sha256:used", RepoTags: []string{"app:1"}, Size: 50 * mb},
		{Id: "sha256:pause", RepoTags: []string{"registry.k8s.io/pause:3.10"}, Size: 1 * mb},
		{Id: "sha256:pinned", RepoTags: []string{"pinned:1"}, Size: 10 * mb, Pinned: true},
		{Id: "sha256:kept", RepoTags: []string{"keep:me"}, Size: 10 * mb},
		{Id: "sha256:old-small", RepoTags: []string{"old:1"}, Size: 5 * mb},
		{Id: "sha256:old-big", RepoTags: []string{"old:2"}, Size: 30 * mb},
	}}
	used := uint64(90)
	g, err := New(Config{Runtime: rt, Images: ims, Keep: []string{"keep:me"}, Clock: clk,
		Statfs: func(string) (uint64, uint64, error) { return 100 * mb, (100 - used) * mb, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// First sighting: unused images are too young to go.
	if freed, err := g.Collect(ctx); err != nil || freed != 0 {
		t.Fatalf("first round freed %d, %v", freed, err)
	}
	clk.Step(DefaultMinAge)
	// 90% used, high 85%: free down to 80%, 10 MB: the larger old image goes first, enough.
	freed, err := g.Collect(ctx)
	if err != nil || freed != 30*mb {
		t.Fatalf("freed %d, %v", freed, err)
	}
	if !slices.Equal(ims.removed, []string{"sha256:old-big"}) {
		t.Errorf("removed %v", ims.removed)
	}
	// Below the threshold nothing more goes.
	used = 60
	if freed, _ := g.Collect(ctx); freed != 0 || len(ims.removed) != 1 {
		t.Errorf("below the threshold: freed %d, removed %v", freed, ims.removed)
	}
	// Far above it: everything unused goes, never the used, pinned, sandbox or kept images.
	used = 99
	if _, err := g.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range ims.removed {
		if id == "sha256:used" || id == "sha256:pause" || id == "sha256:pinned" || id == "sha256:kept" {
			t.Errorf("removed %s", id)
		}
	}
	if !slices.Contains(ims.removed, "sha256:old-small") {
		t.Errorf("old-small not removed: %v", ims.removed)
	}
}

func TestNewRefusesBadThresholds(t *testing.T) {
	if _, err := New(Config{Runtime: &fakeRuntime{}, Images: &fakeImages{}, HighThresholdPercent: 70, LowThresholdPercent: 90}); err == nil {
		t.Error("low above high accepted")
	}
}
