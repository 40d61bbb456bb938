package metaserver

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	clientfeatures "k8s.io/client-go/features"
	clientfeaturestesting "k8s.io/client-go/features/testing"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/skerry-io/skerry/pkg/wire"
)

// TestInformer runs a real client-go shared informer against the metaserver: initial sync,
// add, update, delete, and recovery (relist) after its watch is ended by a compaction. It runs
// in client-go's default watch-list mode (sendInitialEvents) and in classic list+watch mode,
// where the rewatch from the informer's revision gets 410 Expired and must relist.
func TestInformer(t *testing.T) {
	t.Run("watchlist", func(t *testing.T) { testInformer(t) })
	t.Run("listwatch", func(t *testing.T) {
		clientfeaturestesting.SetFeatureDuringTest(t, clientfeatures.WatchListClient, false)
		testInformer(t)
	})
}

func testInformer(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BookmarkInterval = time.Hour })
	e.store.put(podKey("default", "a"), pod("default", "a", map[string]string{"app": "web"}, "Running"))

	cs, err := kubernetes.NewForConfig(&rest.Config{Host: e.url})
	if err != nil {
		t.Fatal(err)
	}
	factory := informers.NewSharedInformerFactory(cs, 0)
	inf := factory.Core().V1().Pods().Informer()
	var mu sync.Mutex
	events := map[string]int{}
	phases := map[string]corev1.PodPhase{}
	record := func(kind string, obj any) {
		mu.Lock()
		defer mu.Unlock()
		events[kind]++
		if p, ok := obj.(*corev1.Pod); ok {
			phases[p.Name] = p.Status.Phase
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { record("add", o) },
		UpdateFunc: func(_, o any) { record("update", o) },
		DeleteFunc: func(o any) { record("delete", o) },
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		factory.Shutdown()
	}()
	factory.Start(ctx.Done())
	syncCtx, syncCancel := context.WithTimeout(ctx, 15*time.Second)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	lister := factory.Core().V1().Pods().Lister()
	count := func(name string) func() bool {
		return func() bool {
			_, err := lister.Pods("default").Get(name)
			return err == nil
		}
	}
	waitFor(t, "pod a in the cache", count("a"))

	e.store.put(podKey("default", "b"), pod("default", "b", nil, "Pending"))
	waitFor(t, "pod b added", count("b"))
	e.store.put(podKey("default", "b"), pod("default", "b", nil, "Running"))
	waitFor(t, "pod b updated", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return phases["b"] == corev1.PodRunning && events["update"] >= 1
	})
	e.store.delete(podKey("default", "a"))
	waitFor(t, "pod a deleted", func() bool { return !count("a")() })

	// A change the informer cannot see through its watch (another type moves the revision),
	// then a compaction that ends the watch: the rewatch from the informer's revision gets
	// 410 Expired and the informer must relist.
	lists := e.store.lists()
	waitFor(t, "informer watching", func() bool { return e.store.running() == 1 })
	e.store.put(wire.Key{Namespace: "default", Type: wire.TypeConfigMap, Name: "c"}, configMap("default", "c", nil))
	e.store.compact()
	e.store.put(podKey("default", "c"), pod("default", "c", nil, "Running"))
	waitFor(t, "pod c seen after the relist", count("c"))
	if e.store.lists() <= lists {
		t.Errorf("no relist after compaction (lists %d → %d)", lists, e.store.lists())
	}
	waitFor(t, "pod b still cached", count("b"))
}
