// Package tokens obtains ServiceAccount tokens through the TokenRequest API for pods bound to
// edge nodes. An edge node has no credentials to ask the API server itself, so cloudcore does
// it on the pods' behalf, as the kubelet would, keeps the tokens fresh and hands each pod's set
// out as one PodTokens object (docs/protocol.md, "Downstream").
//
// RBAC: cloudcore's service account needs "create" on "serviceaccounts/token" in the
// namespaces of edge pods (a ClusterRole, as for the kubelet's own token requests).
package tokens

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// PodTokens object identity on the wire.
const (
	APIVersion = "edge.skerry.io/v1"
	Kind       = "PodTokens"
)

const (
	// refreshPercent and maxTokenAge are the kubelet's rules: a token is renewed once 80 % of
	// its lifetime has passed, and at least daily, so that tokens the API server extends to a
	// year (--service-account-extend-token-expiration) still rotate.
	refreshPercent = 80
	maxTokenAge    = 24 * time.Hour
	// A failing refresh is retried from retryBase, doubling up to retryMax; the cap stays well
	// below the shortest lifetime the API server allows (10 min), so a retry still comes before
	// a token that was due at 80 % expires.
	retryBase = time.Second
	retryMax  = 30 * time.Second
	// requestTimeout bounds one CreateToken made by Run, which has no caller deadline to honour.
	requestTimeout = 30 * time.Second
)

// PodTokens is the content of a serviceaccounttoken message: every token one pod asks for.
type PodTokens struct {
	APIVersion         string   `json:"apiVersion"`
	Kind               string   `json:"kind"`
	Metadata           Metadata `json:"metadata"`
	ServiceAccountName string   `json:"serviceAccountName"`
	Tokens             []Token  `json:"tokens"`
}

// Metadata names the pod. ResourceVersion is opaque and changes whenever a token changes, so
// the edge (and the hub's dedup) can tell a re-issue from a resend.
type Metadata struct {
	Namespace       string    `json:"namespace"`
	Name            string    `json:"name"`
	UID             types.UID `json:"uid"`
	ResourceVersion string    `json:"resourceVersion"`
}

// Token is one issued token with the request it answers.
type Token struct {
	Audience            string      `json:"audience"`
	ExpirationSeconds   int64       `json:"expirationSeconds"`
	Path                string      `json:"path"`
	Token               string      `json:"token"`
	ExpirationTimestamp metav1.Time `json:"expirationTimestamp"`
}

// Config configures a Manager. Client is required.
type Config struct {
	Client kubernetes.Interface
	// Clock defaults to the real clock.
	Clock clock.Clock
	// Logger defaults to discarding.
	Logger *slog.Logger
	// OnRefresh is called by Run, without locks held, after it re-issued tokens of a pod, so the
	// owner fetches them with Tokens and sends them down. It runs on Run's goroutine: slow work
	// there delays other refreshes.
	OnRefresh func(namespace, pod string)
}

// Stats are counters since New.
type Stats struct {
	Issued    uint64 // tokens obtained from the API server
	Refreshed uint64 // of those, tokens that replaced a cached one
	Failures  uint64 // CreateToken calls that failed
	Pods      int    // pods with cached tokens
}

// Manager caches and refreshes the tokens of edge pods. It is safe for concurrent use; no API
// call is made while its lock is held.
type Manager struct {
	client    kubernetes.Interface
	clock     clock.Clock
	log       *slog.Logger
	onRefresh func(namespace, pod string)

	// wake tells Run that an entry may now be due earlier than its timer.
	wake chan struct{}

	issued, refreshed, failures atomic.Uint64

	mu       sync.Mutex
	pods     map[podKey]*podEntry
	inflight map[podKey]*flight
	queue    queue     // pods by next refresh time
	wakeAt   time.Time // when Run's timer fires; zero when Run is not waiting on one
}

// New returns a Manager; call Run to have it refresh tokens.
func New(cfg Config) *Manager {
	m := &Manager{
		client:    cfg.Client,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		onRefresh: cfg.OnRefresh,
		wake:      make(chan struct{}, 1),
		pods:      make(map[podKey]*podEntry),
		inflight:  make(map[podKey]*flight),
	}
	if m.clock == nil {
		m.clock = clock.RealClock{}
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m
}

type podKey struct{ namespace, name string }

// issued is one token as returned by the API server; it is never modified once made.
type issued struct {
	Request
	token     string
	expires   time.Time
	refreshAt time.Time
}

// podEntry is the cache of one pod. Its tokens are bound to uid: a pod re-created under the
// same name gets a new entry.
type podEntry struct {
	key    podKey
	uid    types.UID
	sa     string
	reqs   []Request
	tokens map[requestKey]*issued

	failures int       // consecutive failed refresh rounds
	retryAt  time.Time // no refresh before this while failing
	next     time.Time // when Run must look at the entry again
	index    int       // position in Manager.queue; -1 when not queued

	doc json.RawMessage // the PodTokens of the tokens held
	rv  string
}

// flight is a token request round in progress for one pod; others wanting the pod wait for it
// instead of asking the API server again.
type flight struct {
	done      chan struct{}
	forgotten bool // set by Forget: the results must not be cached
}

// plan is what a flight requests, captured under the lock.
type plan struct {
	key   podKey
	uid   types.UID
	sa    string
	reqs  []Request // the pod's whole request set
	issue []Request // those to request now
	base  *podEntry // the cached entry at the start, nil if none
}

type result struct {
	tok *issued
	err error
}

// Tokens returns the PodTokens JSON of the pod and its resourceVersion, requesting the tokens
// that are missing or stale. A pod that projects no service account token needs none: the
// result is nil and anything cached for the pod is dropped. A token due for refresh whose
// refresh fails is still returned while it has not expired (as the kubelet does); the error is
// logged. The returned slice is the caller's.
func (m *Manager) Tokens(ctx context.Context, pod *corev1.Pod) (json.RawMessage, string, error) {
	key := podKey{pod.Namespace, pod.Name}
	reqs := Requests(pod)
	if len(reqs) == 0 {
		m.Forget(key.namespace, key.name)
		return nil, "", nil
	}
	sa := ServiceAccountName(pod)
	for {
		m.mu.Lock()
		if f := m.inflight[key]; f != nil {
			m.mu.Unlock()
			if err := waitFlight(ctx, f); err != nil {
				return nil, "", fmt.Errorf("tokens of pod %s/%s: %w", key.namespace, key.name, err)
			}
			continue
		}
		e := m.pods[key]
		if e != nil && (e.uid != pod.UID || e.sa != sa) {
			m.removeLocked(e) // its tokens are bound to the pod that went
			e = nil
		}
		now := m.clock.Now()
		p := &plan{key: key, uid: pod.UID, sa: sa, reqs: reqs, base: e}
		for _, r := range reqs {
			if e == nil || !fresh(e.tokens[r.key()], now) {
				p.issue = append(p.issue, r)
			}
		}
		if e != nil && slices.Equal(e.reqs, reqs) {
			// Fresh, or in retry backoff after a failed refresh with every token still valid:
			// asking again now would only add load to a failing API server.
			if len(p.issue) == 0 || (now.Before(e.retryAt) && valid(e, reqs, now)) {
				doc, rv := slices.Clone(e.doc), e.rv
				m.mu.Unlock()
				return doc, rv, nil
			}
		}
		f := m.startLocked(key)
		m.mu.Unlock()

		res := m.issue(ctx, p)

		m.mu.Lock()
		e, _ = m.finishLocked(f, p, res)
		ok := e != nil && valid(e, reqs, m.clock.Now())
		var doc json.RawMessage
		var rv string
		if ok {
			doc, rv = slices.Clone(e.doc), e.rv
		}
		m.mu.Unlock()

		err := joinErrs(res)
		if ok {
			if err != nil {
				m.log.Warn("refreshing service account token failed, serving the cached one",
					"namespace", key.namespace, "pod", key.name, "serviceAccount", sa, "err", err)
			}
			return doc, rv, nil
		}
		if err == nil {
			err = fmt.Errorf("tokens of pod %s/%s: issued tokens already expired", key.namespace, key.name)
		}
		return nil, "", err
	}
}

// Forget drops the pod's tokens and stops refreshing them: call it when the pod leaves its edge
// node or is deleted. A request round in progress for the pod finishes but is not cached.
func (m *Manager) Forget(namespace, pod string) {
	key := podKey{namespace, pod}
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.inflight[key]; f != nil {
		f.forgotten = true
	}
	if e := m.pods[key]; e != nil {
		m.removeLocked(e)
	}
}

// Stats returns the counters.
func (m *Manager) Stats() Stats {
	m.mu.Lock()
	n := len(m.pods)
	m.mu.Unlock()
	return Stats{
		Issued:    m.issued.Load(),
		Refreshed: m.refreshed.Load(),
		Failures:  m.failures.Load(),
		Pods:      n,
	}
}

// Run refreshes due tokens until ctx is done, sleeping on a timer until the next one is due.
// Call it once; it is the only goroutine the Manager starts.
func (m *Manager) Run(ctx context.Context) {
	for ctx.Err() == nil {
		m.mu.Lock()
		now := m.clock.Now()
		var timer clock.Timer
		if len(m.queue) > 0 {
			head := m.queue[0]
			if !head.next.After(now) {
				if f := m.inflight[head.key]; f != nil {
					// Tokens is renewing it right now; its round reschedules the entry.
					m.mu.Unlock()
					_ = waitFlight(ctx, f)
					continue
				}
				p, f := m.refreshPlanLocked(head, now)
				m.mu.Unlock()
				m.refresh(ctx, p, f)
				continue
			}
			// Made under the lock together with wakeAt, so that whoever sees wakeAt set also
			// finds the timer armed.
			timer = m.clock.NewTimer(head.next.Sub(now))
			m.wakeAt = head.next
		}
		m.mu.Unlock()

		var fired <-chan time.Time
		if timer != nil {
			fired = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-m.wake:
		case <-fired:
		}
		if timer != nil {
			timer.Stop()
		}
		m.mu.Lock()
		m.wakeAt = time.Time{}
		m.mu.Unlock()
	}
}

// refreshPlanLocked starts a flight re-issuing the entry's due and missing tokens.
func (m *Manager) refreshPlanLocked(e *podEntry, now time.Time) (*plan, *flight) {
	p := &plan{key: e.key, uid: e.uid, sa: e.sa, reqs: e.reqs, base: e}
	for _, r := range e.reqs {
		if !fresh(e.tokens[r.key()], now) {
			p.issue = append(p.issue, r)
		}
	}
	return p, m.startLocked(e.key)
}

func (m *Manager) refresh(ctx context.Context, p *plan, f *flight) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	res := m.issue(rctx, p)
	cancel()

	m.mu.Lock()
	e, changed := m.finishLocked(f, p, res)
	var attempt int
	var retryIn time.Duration
	if e != nil {
		attempt, retryIn = e.failures, e.retryAt.Sub(m.clock.Now())
	}
	m.mu.Unlock()

	if ctx.Err() == nil {
		for _, r := range res {
			if r.err != nil {
				m.log.Warn("refreshing service account token failed",
					"namespace", p.key.namespace, "pod", p.key.name, "serviceAccount", p.sa,
					"attempt", attempt, "retryIn", retryIn, "err", r.err)
			}
		}
	}
	if changed && m.onRefresh != nil {
		m.onRefresh(p.key.namespace, p.key.name)
	}
}

func (m *Manager) startLocked(key podKey) *flight {
	f := &flight{done: make(chan struct{})}
	m.inflight[key] = f
	return f
}

func waitFlight(ctx context.Context, f *flight) error {
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finishLocked ends the flight and applies its results: to the cached entry, or to a copy of it
// when the pod was forgotten meanwhile (the caller of Tokens still gets its tokens). It returns
// the entry (nil if there is nothing to hold) and whether cached tokens changed.
func (m *Manager) finishLocked(f *flight, p *plan, res []result) (*podEntry, bool) {
	delete(m.inflight, p.key)
	defer close(f.done)

	store := !f.forgotten && m.pods[p.key] == p.base
	e := p.base
	switch {
	case e == nil:
		if !slices.ContainsFunc(res, func(r result) bool { return r.err == nil }) {
			return nil, false
		}
		e = &podEntry{key: p.key, uid: p.uid, sa: p.sa, tokens: make(map[requestKey]*issued), index: -1}
	case !store:
		c := *e
		c.tokens = maps.Clone(e.tokens)
		c.index = -1
		e = &c
	}
	changed := m.apply(e, p, res)
	if store {
		m.pods[p.key] = e
		m.scheduleLocked(e)
	}
	return e, changed && store
}

// apply puts the results into e and recomputes its document and next refresh time.
func (m *Manager) apply(e *podEntry, p *plan, res []result) bool {
	changed := !slices.Equal(e.reqs, p.reqs)
	if changed {
		e.reqs = p.reqs
		for k := range e.tokens {
			if !containsKey(p.reqs, k) {
				delete(e.tokens, k)
			}
		}
	}
	failed := false
	for _, r := range res {
		if r.err != nil {
			failed = true
			continue
		}
		if e.tokens[r.tok.key()] != nil {
			m.refreshed.Add(1)
		}
		e.tokens[r.tok.key()] = r.tok
		changed = true
	}
	now := m.clock.Now()
	if failed {
		e.failures++
		e.retryAt = now.Add(backoff(e.failures))
	} else {
		e.failures, e.retryAt = 0, time.Time{}
	}
	if changed || e.doc == nil {
		e.doc, e.rv = render(e)
	}
	e.next = time.Time{} // a missing token is due at once
	for i, r := range e.reqs {
		t := e.tokens[r.key()]
		if t == nil {
			e.next = time.Time{}
			break
		}
		if i == 0 || t.refreshAt.Before(e.next) {
			e.next = t.refreshAt
		}
	}
	if e.retryAt.After(e.next) {
		e.next = e.retryAt
	}
	return changed
}

func backoff(failures int) time.Duration {
	d := retryBase
	for i := 1; i < failures && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
}

// render builds the PodTokens document; the resourceVersion hashes the tokens it carries, so
// it changes exactly when a token does.
func render(e *podEntry) (json.RawMessage, string) {
	doc := PodTokens{
		APIVersion:         APIVersion,
		Kind:               Kind,
		Metadata:           Metadata{Namespace: e.key.namespace, Name: e.key.name, UID: e.uid},
		ServiceAccountName: e.sa,
		Tokens:             []Token{},
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", e.uid, e.sa)
	for _, r := range e.reqs {
		t := e.tokens[r.key()]
		if t == nil {
			continue
		}
		doc.Tokens = append(doc.Tokens, Token{
			Audience:            r.Audience,
			ExpirationSeconds:   r.ExpirationSeconds,
			Path:                r.Path,
			Token:               t.token,
			ExpirationTimestamp: metav1.NewTime(t.expires.UTC().Truncate(time.Second)),
		})
		fmt.Fprintf(h, "%s\x00%d\x00%s\x00%s\x00", r.Audience, r.ExpirationSeconds, r.Path, t.token)
	}
	doc.Metadata.ResourceVersion = hex.EncodeToString(h.Sum(nil)[:8])
	b, err := json.Marshal(doc)
	if err != nil {
		// Strings, integers and times only: cannot fail.
		panic(fmt.Sprintf("tokens: marshal PodTokens: %v", err))
	}
	return b, doc.Metadata.ResourceVersion
}

// fresh reports whether t exists and is not yet due for refresh.
func fresh(t *issued, now time.Time) bool {
	return t != nil && now.Before(t.refreshAt)
}

// valid reports whether e holds an unexpired token for every request.
func valid(e *podEntry, reqs []Request, now time.Time) bool {
	if !slices.Equal(e.reqs, reqs) {
		return false
	}
	for _, r := range reqs {
		t := e.tokens[r.key()]
		if t == nil || !now.Before(t.expires) {
			return false
		}
	}
	return true
}

func joinErrs(res []result) error {
	var errs []error
	for _, r := range res {
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	return errors.Join(errs...)
}

// issue requests p.issue one after another; no lock is held.
func (m *Manager) issue(ctx context.Context, p *plan) []result {
	res := make([]result, len(p.issue))
	for i, r := range p.issue {
		res[i] = m.request(ctx, p, r)
	}
	return res
}

func (m *Manager) request(ctx context.Context, p *plan, r Request) result {
	ns, pod := p.key.namespace, p.key.name
	if err := ctx.Err(); err != nil {
		return result{err: fmt.Errorf("token for pod %s/%s, service account %q, audience %q: %w", ns, pod, p.sa, r.Audience, err)}
	}
	secs := r.ExpirationSeconds
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: &secs,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod, UID: p.uid},
	}}
	if r.Audience != "" {
		tr.Spec.Audiences = []string{r.Audience}
	}
	start := m.clock.Now()
	out, err := m.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, p.sa, tr, metav1.CreateOptions{})
	if err == nil && (out == nil || out.Status.Token == "") {
		err = errors.New("API server returned no token")
	}
	var exp time.Time
	if err == nil {
		exp = out.Status.ExpirationTimestamp.Time
		if exp.IsZero() {
			exp = start.Add(time.Duration(secs) * time.Second)
		}
		if !exp.After(start) {
			err = fmt.Errorf("API server returned a token that expired at %s", exp.UTC().Format(time.RFC3339))
		}
	}
	if err != nil {
		m.failures.Add(1)
		if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
			return result{err: fmt.Errorf("token for pod %s/%s: service account %q missing or not permitted (audience %q): %w", ns, pod, p.sa, r.Audience, err)}
		}
		return result{err: fmt.Errorf("token for pod %s/%s, service account %q, audience %q: %w", ns, pod, p.sa, r.Audience, err)}
	}
	m.issued.Add(1)
	// Measured from our own clock at the request, not from expirationSeconds: the server may
	// have extended the lifetime, and its clock is not ours.
	life := exp.Sub(start)
	refreshAt := start.Add(min(life*refreshPercent/100, maxTokenAge))
	return result{tok: &issued{Request: r, token: out.Status.Token, expires: exp, refreshAt: refreshAt}}
}

// removeLocked drops e from the cache and the refresh queue.
func (m *Manager) removeLocked(e *podEntry) {
	delete(m.pods, e.key)
	if e.index >= 0 {
		heap.Remove(&m.queue, e.index)
	}
}

// scheduleLocked (re)queues e and wakes Run if e is now due before Run's timer.
func (m *Manager) scheduleLocked(e *podEntry) {
	if e.index >= 0 {
		heap.Fix(&m.queue, e.index)
	} else {
		heap.Push(&m.queue, e)
	}
	if m.wakeAt.IsZero() || e.next.Before(m.wakeAt) {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// queue is a min-heap of entries by next.
type queue []*podEntry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *queue) Push(x any) {
	e := x.(*podEntry)
	e.index = len(*q)
	*q = append(*q, e)
}

func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}
