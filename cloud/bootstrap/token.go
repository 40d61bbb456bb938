// Package bootstrap is cloudcore's node bootstrap service (HTTPS :10002): it hands out the CA
// certificate, checks join tokens and signs the client certificates edge nodes identify with.
//
// A join token prints as "<hex sha256 of the CA certificate DER>.<id>.<secret>". The edge splits
// it at the first '.', as KubeEdge's edgecore does, pins the CA with the first part and sends the
// rest as its bearer token. Unlike KubeEdge's 24 h JWT that any node may reuse, our tokens are
// random, stored server-side (only a hash of the secret), expire, may be bound to one node name or
// limited to a single use, and can be revoked.
package bootstrap

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	// DefaultTokenTTL matches KubeEdge's token lifetime.
	DefaultTokenTTL = 24 * time.Hour

	tokenIDBytes     = 8  // 16 hex characters: unique enough to name a Secret, not secret.
	tokenSecretBytes = 24 // 192 bits from crypto/rand.
	caHashLen        = sha256.Size * 2
)

// Errors returned by token stores and validation; test with errors.Is.
var (
	ErrTokenNotFound = errors.New("bootstrap: token not found")
	ErrTokenInvalid  = errors.New("bootstrap: malformed token")
)

// Token is a parsed join token as an operator handles it.
type Token struct {
	CAHash [sha256.Size]byte // sha256 of the CA certificate DER
	ID     string            // lower-case hex, names the stored record
	Secret string            // lower-case hex, only its hash is stored
}

// String prints the token in the form edgecore and keadm expect.
func (t Token) String() string {
	return hex.EncodeToString(t.CAHash[:]) + "." + t.Bearer()
}

// Bearer is the part of the token sent in the Authorization header.
func (t Token) Bearer() string { return t.ID + "." + t.Secret }

// ParseToken parses a full join token "<cahash>.<id>.<secret>".
func ParseToken(s string) (Token, error) {
	hashPart, bearer, ok := strings.Cut(s, ".")
	if !ok || len(hashPart) != caHashLen || !isLowerHex(hashPart) {
		return Token{}, fmt.Errorf("%w: want <64 hex characters of the CA hash>.<id>.<secret>", ErrTokenInvalid)
	}
	id, secret, err := ParseBearer(bearer)
	if err != nil {
		return Token{}, err
	}
	t := Token{ID: id, Secret: secret}
	if _, err := hex.Decode(t.CAHash[:], []byte(hashPart)); err != nil {
		return Token{}, fmt.Errorf("%w: CA hash: %v", ErrTokenInvalid, err)
	}
	return t, nil
}

// ParseBearer parses the "<id>.<secret>" part of a token.
func ParseBearer(s string) (id, secret string, err error) {
	id, secret, ok := strings.Cut(s, ".")
	if !ok || len(id) != tokenIDBytes*2 || len(secret) != tokenSecretBytes*2 || !isLowerHex(id) || !isLowerHex(secret) {
		return "", "", fmt.Errorf("%w: want <%d hex characters>.<%d hex characters>", ErrTokenInvalid, tokenIDBytes*2, tokenSecretBytes*2)
	}
	return id, secret, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CAHash returns the sha256 of a CA certificate's DER, the pin carried in every token.
func CAHash(ca *x509.Certificate) [sha256.Size]byte { return sha256.Sum256(ca.Raw) }

// TokenRecord is what the server stores about a token. It never holds the secret itself.
type TokenRecord struct {
	ID         string
	SecretHash [sha256.Size]byte
	Expires    time.Time
	// NodeName, when set, is the only node the token may join.
	NodeName string
	// SingleUse tokens are consumed by the first certificate they obtain.
	SingleUse   bool
	Description string

	// UID and Version identify the stored object Get read (for Secrets: metadata.uid and
	// resourceVersion), so that Consume removes exactly that version. Opaque to callers.
	UID, Version string
}

// SecretMatches compares in constant time so that response timing tells nothing about the secret.
func (r *TokenRecord) SecretMatches(secret string) bool {
	h := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(h[:], r.SecretHash[:]) == 1
}

// TokenStore keeps token records. Implementations must make Consume atomic: of two callers that
// consume the same record, at most one succeeds.
type TokenStore interface {
	Create(ctx context.Context, rec *TokenRecord) error
	// Get returns ErrTokenNotFound (wrapped) for unknown, revoked and consumed tokens.
	Get(ctx context.Context, id string) (*TokenRecord, error)
	// Consume removes a single-use token, succeeding only if it is still the version Get
	// returned; otherwise it returns an error wrapping ErrTokenNotFound.
	Consume(ctx context.Context, rec *TokenRecord) error
	// Revoke deletes a token; revoking an unknown token is not an error.
	Revoke(ctx context.Context, id string) error
}

// TokenOptions describe a new token.
type TokenOptions struct {
	// TTL defaults to DefaultTokenTTL.
	TTL         time.Duration
	NodeName    string
	SingleUse   bool
	Description string
}

// CreateToken generates a token for the CA ca, stores its record and returns the token to print.
func CreateToken(ctx context.Context, store TokenStore, ca *x509.Certificate, opts TokenOptions, now time.Time) (Token, error) {
	if opts.NodeName != "" {
		if errs := validation.IsDNS1123Subdomain(opts.NodeName); len(errs) > 0 {
			return Token{}, fmt.Errorf("bootstrap: node name %q: %s", opts.NodeName, strings.Join(errs, "; "))
		}
	}
	ttl := opts.TTL
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	var id [tokenIDBytes]byte
	var secret [tokenSecretBytes]byte
	// crypto/rand.Read never fails on supported platforms; it panics otherwise.
	_, _ = rand.Read(id[:])
	_, _ = rand.Read(secret[:])
	t := Token{CAHash: CAHash(ca), ID: hex.EncodeToString(id[:]), Secret: hex.EncodeToString(secret[:])}
	rec := &TokenRecord{
		ID:          t.ID,
		SecretHash:  sha256.Sum256([]byte(t.Secret)),
		Expires:     now.Add(ttl).UTC().Truncate(time.Second),
		NodeName:    opts.NodeName,
		SingleUse:   opts.SingleUse,
		Description: opts.Description,
	}
	if err := store.Create(ctx, rec); err != nil {
		return Token{}, err
	}
	return t, nil
}
