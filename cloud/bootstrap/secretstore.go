package bootstrap

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Secret layout of a stored token.
const (
	TokenNamespace  = "kubeedge"
	TokenSecretType = corev1.SecretType("skerry.io/join-token")
	tokenNamePrefix = "join-token-"

	keyTokenID     = "token-id"
	keySecretHash  = "token-secret-sha256"
	keyExpiration  = "expiration"
	keyNodeName    = "node-name"
	keySingleUse   = "single-use"
	keyDescription = "description"
)

// SecretStore keeps one Secret per token in namespace kubeedge, so tokens survive cloudcore
// restarts, are shared by several cloudcore replicas and can be revoked with kubectl.
type SecretStore struct {
	client    kubernetes.Interface
	namespace string
}

// NewSecretStore returns a store in namespace ns (TokenNamespace if empty).
func NewSecretStore(client kubernetes.Interface, ns string) *SecretStore {
	if ns == "" {
		ns = TokenNamespace
	}
	return &SecretStore{client: client, namespace: ns}
}

func secretName(id string) string { return tokenNamePrefix + id }

func (s *SecretStore) Create(ctx context.Context, rec *TokenRecord) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      secretName(rec.ID),
			Namespace: s.namespace,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "skerry"},
		},
		Type: TokenSecretType,
		Data: map[string][]byte{
			keyTokenID:    []byte(rec.ID),
			keySecretHash: []byte(hex.EncodeToString(rec.SecretHash[:])),
			keyExpiration: []byte(rec.Expires.UTC().Format(time.RFC3339)),
			keySingleUse:  []byte(strconv.FormatBool(rec.SingleUse)),
		},
	}
	if rec.NodeName != "" {
		sec.Data[keyNodeName] = []byte(rec.NodeName)
	}
	if rec.Description != "" {
		sec.Data[keyDescription] = []byte(rec.Description)
	}
	if _, err := s.client.CoreV1().Secrets(s.namespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("bootstrap: store token %s: %w", rec.ID, err)
	}
	return nil
}

func (s *SecretStore) Get(ctx context.Context, id string) (*TokenRecord, error) {
	sec, err := s.client.CoreV1().Secrets(s.namespace).Get(ctx, secretName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", ErrTokenNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("bootstrap: get token %s: %w", id, err)
	}
	return recordFromSecret(id, sec)
}

// recordFromSecret refuses anything that is not a well-formed token Secret: a Secret someone
// created by hand with the right name must not become a token by accident.
func recordFromSecret(id string, sec *corev1.Secret) (*TokenRecord, error) {
	bad := func(what string) error {
		return fmt.Errorf("bootstrap: Secret %s/%s is not a valid join token (%s)", sec.Namespace, sec.Name, what)
	}
	if sec.Type != TokenSecretType {
		return nil, bad("type " + string(sec.Type))
	}
	if string(sec.Data[keyTokenID]) != id {
		return nil, bad("token id")
	}
	rec := &TokenRecord{
		ID:          id,
		NodeName:    string(sec.Data[keyNodeName]),
		Description: string(sec.Data[keyDescription]),
		Version:     sec.ResourceVersion,
		UID:         string(sec.UID),
	}
	if n, err := hex.Decode(rec.SecretHash[:], sec.Data[keySecretHash]); err != nil || n != len(rec.SecretHash) || len(sec.Data[keySecretHash]) != 2*n {
		return nil, bad("secret hash")
	}
	exp, err := time.Parse(time.RFC3339, string(sec.Data[keyExpiration]))
	if err != nil {
		return nil, bad("expiration")
	}
	rec.Expires = exp
	if rec.SingleUse, err = strconv.ParseBool(string(sec.Data[keySingleUse])); err != nil {
		return nil, bad("single-use")
	}
	return rec, nil
}

// Consume deletes the Secret with preconditions on its UID and resourceVersion: the API server
// deletes it for exactly one of several racing callers, and only if nobody changed it since Get.
func (s *SecretStore) Consume(ctx context.Context, rec *TokenRecord) error {
	pre := metav1.Preconditions{}
	if rec.UID != "" {
		uid := types.UID(rec.UID)
		pre.UID = &uid
	}
	if rec.Version != "" {
		pre.ResourceVersion = &rec.Version
	}
	err := s.client.CoreV1().Secrets(s.namespace).Delete(ctx, secretName(rec.ID), metav1.DeleteOptions{Preconditions: &pre})
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return fmt.Errorf("%w: %s was used or changed concurrently", ErrTokenNotFound, rec.ID)
	default:
		return fmt.Errorf("bootstrap: consume token %s: %w", rec.ID, err)
	}
}

// Prune deletes tokens that expired before now, so used-up tokens do not accumulate. It returns
// how many it deleted. Secrets that are not well-formed tokens are left alone.
func (s *SecretStore) Prune(ctx context.Context, now time.Time) (int, error) {
	list, err := s.client.CoreV1().Secrets(s.namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "type=" + string(TokenSecretType),
	})
	if err != nil {
		return 0, fmt.Errorf("bootstrap: list tokens: %w", err)
	}
	n := 0
	for i := range list.Items {
		sec := &list.Items[i]
		id, ok := strings.CutPrefix(sec.Name, tokenNamePrefix)
		if !ok {
			continue
		}
		rec, err := recordFromSecret(id, sec)
		if err != nil || now.Before(rec.Expires) {
			continue
		}
		if err := s.Revoke(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (s *SecretStore) Revoke(ctx context.Context, id string) error {
	err := s.client.CoreV1().Secrets(s.namespace).Delete(ctx, secretName(id), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("bootstrap: revoke token %s: %w", id, err)
	}
	return nil
}
