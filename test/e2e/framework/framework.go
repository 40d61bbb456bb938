// Package framework gives Skerry's end-to-end tests the real parts they run against: the local
// control plane (kube-apiserver built from pinned upstream source) and containerd through CRI,
// started by hack/local-up.sh when they are not already running.
package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	devicesclient "github.com/skerry-io/skerry/pkg/client/clientset/versioned"
)

// KubeVersion is the pinned upstream Kubernetes the local control plane is built from.
const KubeVersion = "v1.36.3"

// CRIEndpoint is where hack/runtime-up.sh serves containerd's CRI.
const CRIEndpoint = "unix:///run/skerry/containerd/containerd.sock"

// Env is one run's view of the real components.
type Env struct {
	Root       string // repository root
	Kubeconfig string
	Kubectl    string // the kubectl built from the pinned source
	RestConfig *rest.Config
	Kube       kubernetes.Interface
	Dynamic    dynamic.Interface
	Devices    devicesclient.Interface
	CRI        runtimeapi.RuntimeServiceClient
	Images     runtimeapi.ImageServiceClient

	criConn *grpc.ClientConn
	started bool // this run started the components and stops them in Close
}

// Setup connects to the local control plane and runtime, starting them with hack/local-up.sh
// when they do not answer. Progress of local-up goes to log.
func Setup(ctx context.Context, log io.Writer) (*Env, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	e := &Env{
		Root:       root,
		Kubeconfig: filepath.Join(root, "_output", "local", "kubeconfig"),
		Kubectl:    filepath.Join(root, "_output", "kube", KubeVersion, "kubectl"),
	}
	if !e.ready(ctx) {
		fmt.Fprintln(log, "e2e: control plane or runtime not running; starting them with hack/local-up.sh")
		if err := e.script(ctx, log, "hack/local-up.sh"); err != nil {
			return nil, fmt.Errorf("hack/local-up.sh: %w", err)
		}
		e.started = true
	} else {
		fmt.Fprintln(log, "e2e: reusing the running control plane and runtime")
	}
	if err := e.connect(); err != nil {
		e.Close(log)
		return nil, err
	}
	return e, nil
}

// Close releases the clients and, when Setup started the components, stops them again
// (unless SKERRY_E2E_KEEP_UP is set, to look around after a run).
func (e *Env) Close(log io.Writer) {
	if e.criConn != nil {
		e.criConn.Close()
	}
	if e.started && os.Getenv("SKERRY_E2E_KEEP_UP") == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := e.script(ctx, log, "hack/local-down.sh"); err != nil {
			fmt.Fprintf(log, "e2e: hack/local-down.sh: %v\n", err)
		}
	}
}

// ready reports whether the apiserver answers /readyz and containerd answers CRI Version.
func (e *Env) ready(ctx context.Context) bool {
	if _, err := os.Stat(e.Kubectl); err != nil {
		return false
	}
	if err := e.connect(); err != nil {
		return false
	}
	defer func() {
		e.criConn.Close()
		e.criConn = nil
	}()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	body, err := e.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil || string(body) != "ok" {
		return false
	}
	_, err = e.CRI.Version(ctx, &runtimeapi.VersionRequest{})
	return err == nil
}

func (e *Env) connect() error {
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", e.Kubeconfig, err)
	}
	cfg.UserAgent = "skerry-e2e"
	e.RestConfig = cfg
	if e.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	if e.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return err
	}
	if e.Devices, err = devicesclient.NewForConfig(cfg); err != nil {
		return err
	}
	e.criConn, err = grpc.NewClient(CRIEndpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("CRI %s: %w", CRIEndpoint, err)
	}
	e.CRI = runtimeapi.NewRuntimeServiceClient(e.criConn)
	e.Images = runtimeapi.NewImageServiceClient(e.criConn)
	return nil
}

func (e *Env) script(ctx context.Context, log io.Writer, name string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(e.Root, name))
	cmd.Dir = e.Root
	cmd.Stdout, cmd.Stderr = log, log
	return cmd.Run()
}

// RuntimeUp runs hack/runtime-up.sh, which starts whatever part of the runtime has stopped
// (containerd after a crash, say) and waits until CRI answers.
func (e *Env) RuntimeUp(ctx context.Context, log io.Writer) error {
	return e.script(ctx, log, "hack/runtime-up.sh")
}

// RunKubectl runs the pinned kubectl against the local cluster with fixed arguments and returns
// its stdout; on failure the error carries stderr.
func (e *Env) RunKubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.Kubectl, append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	cmd.Dir = e.Root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %v: %w: %s", args, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// repoRoot finds the repository root from this source file's location.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the framework source")
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("repository root %s: %w", root, err)
	}
	return root, nil
}
