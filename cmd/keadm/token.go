package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skerry-io/skerry/cloud/bootstrap"
	"github.com/skerry-io/skerry/cloud/ca"
)

// kubeClientFunc returns a client for the cluster the kubeconfig file at path points to.
type kubeClientFunc func(path string) (kubernetes.Interface, error)

// requestTimeout bounds every keadm call to the API server.
const requestTimeout = 30 * time.Second

func newKubeClient(path string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	rc.UserAgent = "skerry-keadm"
	return kubernetes.NewForConfig(rc)
}

// kubeFlags are the flags of the commands that talk to the cluster.
type kubeFlags struct {
	kubeconfig string
	namespace  string
}

func (k *kubeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file of the cluster cloudcore runs in (default $KUBECONFIG, then ~/.kube/config)")
	cmd.Flags().StringVar(&k.namespace, "namespace", bootstrap.TokenNamespace, "cloudcore's namespace (config key namespace)")
}

// path resolves --kubeconfig: the flag, then $KUBECONFIG (its first file when it lists
// several), then ~/.kube/config.
func (k *kubeFlags) path() (string, error) {
	if k.kubeconfig != "" {
		return k.kubeconfig, nil
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		if list := filepath.SplitList(env); len(list) > 0 && list[0] != "" {
			return list[0], nil
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.New("no --kubeconfig, $KUBECONFIG unset and no home directory: pass --kubeconfig")
	}
	return filepath.Join(home, ".kube", "config"), nil
}

func (k *kubeFlags) client(kube kubeClientFunc) (kubernetes.Interface, error) {
	p, err := k.path()
	if err != nil {
		return nil, err
	}
	return kube(p)
}

func newGetTokenCommand(kube kubeClientFunc) *cobra.Command {
	var (
		kf   kubeFlags
		opts bootstrap.TokenOptions
	)
	cmd := &cobra.Command{
		Use:   "gettoken",
		Short: "Create a join token for edge nodes (prints only the token, so TOKEN=$(keadm gettoken) works)",
		Long: `Create a join token for "keadm join" / edgecore. The token is printed alone on stdout;
its id, expiry and restrictions go to stderr. Revoke it with "keadm revoketoken <id>".
cloudcore must have started once, since the token pins cloudcore's CA.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.TTL <= 0 {
				return fmt.Errorf("--ttl %v: want > 0", opts.TTL)
			}
			client, err := kf.client(kube)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			caCert, err := ca.LoadCACert(ctx, client, kf.namespace)
			if err != nil {
				return err
			}
			now := time.Now()
			tok, err := bootstrap.CreateToken(ctx, bootstrap.NewSecretStore(client, kf.namespace), caCert, opts, now)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), tok.String()); err != nil {
				return err
			}
			info := fmt.Sprintf("token %s expires %s (in %s)", tok.ID, now.Add(opts.TTL).UTC().Truncate(time.Second).Format(time.RFC3339), opts.TTL)
			if opts.NodeName != "" {
				info += ", only for node " + opts.NodeName
			}
			if opts.SingleUse {
				info += ", single use"
			}
			_, err = fmt.Fprintf(cmd.ErrOrStderr(), "%s; revoke with: keadm revoketoken %s\n", info, tok.ID)
			return err
		},
	}
	kf.add(cmd)
	f := cmd.Flags()
	f.DurationVar(&opts.TTL, "ttl", bootstrap.DefaultTokenTTL, "how long the token is valid")
	f.StringVar(&opts.NodeName, "node", "", "accept the token only for this node name")
	f.BoolVar(&opts.SingleUse, "single-use", false, "the token joins one node, then is deleted")
	f.StringVar(&opts.Description, "description", "", "free text stored with the token")
	return cmd
}

func newRevokeTokenCommand(kube kubeClientFunc) *cobra.Command {
	var kf kubeFlags
	cmd := &cobra.Command{
		Use:   "revoketoken ID",
		Short: "Revoke a join token (ID is the token's middle part, as printed by gettoken on stderr)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			// A whole token or its bearer part is accepted too, so a pasted token works.
			if t, err := bootstrap.ParseToken(id); err == nil {
				id = t.ID
			} else if tid, _, err := bootstrap.ParseBearer(id); err == nil {
				id = tid
			} else if len(id) != 16 || !isLowerHex(id) {
				return fmt.Errorf("token id %q: want 16 lower-case hex characters", args[0])
			}
			client, err := kf.client(kube)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), requestTimeout)
			defer cancel()
			if err := bootstrap.NewSecretStore(client, kf.namespace).Revoke(ctx, id); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.ErrOrStderr(), "token %s revoked\n", id)
			return err
		},
	}
	kf.add(cmd)
	return cmd
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
