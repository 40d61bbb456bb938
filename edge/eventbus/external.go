package eventbus

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const (
	// maxReconnectInterval caps the backoff between connection attempts.
	maxReconnectInterval = 30 * time.Second
	firstRetryInterval   = time.Second
	// disconnectQuiesce is how long a stopping client waits for its DISCONNECT to go out.
	disconnectQuiesce = 250 // ms
	maxPEMFileBytes   = 1 << 20
	// queueLength is how many received messages may wait for the handlers. When it is full,
	// the client stops reading from the broker (TCP backpressure) rather than dropping.
	queueLength = 1024
)

// externalClient is edgecore's connection to an external broker. paho reconnects after a
// lost connection (with backoff up to maxReconnectInterval); run retries the first
// connection itself, with the same backoff, so that it stops as soon as ctx is done.
//
// Received messages go through a queue to a dispatcher goroutine: paho delivers them in
// order on the goroutine that also reads the broker's acknowledgements, so a handler that
// publishes at QoS 1 and waited there would wait for an acknowledgement nobody reads.
type externalClient struct {
	bus    *EventBus
	client paho.Client
	queue  chan Message
	done   chan struct{} // closed when the dispatcher is to stop

	mu      sync.Mutex
	filters map[string]int // distinct filters subscribed at the broker, with their use counts
	closed  bool
	// cbs tracks paho's OnConnect callbacks, which paho runs on goroutines of its own.
	cbs sync.WaitGroup
}

func newExternalClient(b *EventBus) (*externalClient, error) {
	cfg := b.cfg.External
	ec := &externalClient{bus: b, filters: map[string]int{}, queue: make(chan Message, queueLength), done: make(chan struct{})}
	opts := paho.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetCleanSession(true). // subscriptions are made again in onConnect
		SetAutoReconnect(true).
		SetMaxReconnectInterval(maxReconnectInterval).
		SetConnectTimeout(cfg.ConnectTimeout.Duration).
		SetWriteTimeout(cfg.ConnectTimeout.Duration).
		SetOrderMatters(true).
		SetDefaultPublishHandler(ec.onMessage).
		SetOnConnectHandler(ec.onConnect).
		SetConnectionAttemptHandler(func(_ *url.URL, tc *tls.Config) *tls.Config {
			b.cnt.connectAttempts.Add(1)
			return tc
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			b.log.Warn("external MQTT broker connection lost; reconnecting", "url", cfg.URL, "err", err)
		})
	if cfg.ClientID == "" {
		opts.SetClientID(defaultClientID())
	}
	if cfg.Username != "" {
		opts.SetUsername(cfg.Username)
	}
	if cfg.PasswordFile != "" {
		pw, err := readPassword(cfg.PasswordFile)
		if err != nil {
			return nil, err
		}
		opts.SetPassword(pw)
	}
	if cfg.TLS.isSet() || isTLSURL(cfg.URL) {
		tc, err := loadTLS(cfg.TLS)
		if err != nil {
			return nil, err
		}
		opts.SetTLSConfig(tc)
	}
	ec.client = paho.NewClient(opts)
	return ec, nil
}

func isTLSURL(u string) bool {
	for _, p := range []string{"ssl://", "tls://", "mqtts://", "tcps://"} {
		if len(u) >= len(p) && u[:len(p)] == p {
			return true
		}
	}
	return false
}

// run connects and dispatches received messages until ctx is done, then disconnects and
// returns once its goroutines and paho's callbacks have finished.
func (ec *externalClient) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(ec.dispatch)
	ec.connect(ctx)
	<-ctx.Done()

	ec.mu.Lock()
	ec.closed = true
	ec.mu.Unlock()
	ec.client.Disconnect(disconnectQuiesce)
	ec.cbs.Wait()
	close(ec.done)
	wg.Wait()
}

// connect makes the first connection, retrying with backoff until it works or ctx is done;
// paho makes the later ones.
func (ec *externalClient) connect(ctx context.Context) {
	brokerURL := ec.bus.cfg.External.URL
	wait := firstRetryInterval
	for {
		tok := ec.client.Connect()
		err := waitToken(ctx, tok, ec.bus.cfg.External.ConnectTimeout.Duration+time.Second)
		if err == nil || ctx.Err() != nil {
			return
		}
		ec.bus.log.Warn("cannot connect to the external MQTT broker; retrying", "url", brokerURL, "err", err, "retryIn", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, maxReconnectInterval)
	}
}

func (ec *externalClient) dispatch() {
	for {
		select {
		case <-ec.done:
			return
		case m := <-ec.queue:
			for _, s := range ec.bus.snapshot() {
				if matchFilter(s.filter, m.Topic) {
					ec.bus.deliver(s.h, m)
				}
			}
		}
	}
}

func (ec *externalClient) connected() bool { return ec.client.IsConnectionOpen() }

// onConnect subscribes every filter again: the session is clean, and the broker may have
// restarted without its state.
func (ec *externalClient) onConnect(c paho.Client) {
	ec.mu.Lock()
	if ec.closed {
		ec.mu.Unlock()
		return
	}
	ec.cbs.Add(1)
	defer ec.cbs.Done()
	filters := make(map[string]byte, len(ec.filters))
	for f := range ec.filters {
		filters[f] = ec.bus.cfg.QoS
	}
	ec.mu.Unlock()

	if len(filters) > 0 {
		tok := c.SubscribeMultiple(filters, nil)
		if err := waitToken(context.Background(), tok, ec.bus.cfg.External.ConnectTimeout.Duration); err != nil {
			ec.bus.log.Error("subscribing on the external MQTT broker failed; messages are missed until the next reconnect",
				"url", ec.bus.cfg.External.URL, "err", err)
		}
	}
	// Counted once subscribed, so that a count seen means the subscriptions are in place.
	n := ec.bus.cnt.connects.Add(1)
	ec.bus.log.Info("connected to the external MQTT broker", "url", ec.bus.cfg.External.URL, "reconnect", n > 1, "filters", len(filters))
}

// onMessage drops oversize messages and echoes of our own publishes and queues the rest.
func (ec *externalClient) onMessage(_ paho.Client, pm paho.Message) {
	topic, payload := pm.Topic(), pm.Payload()
	if len(payload) > ec.bus.cfg.MaxPayloadBytes {
		ec.bus.dropOversize("external", topic, len(payload))
		return
	}
	if ec.bus.echo != nil && ec.bus.echo.consume(topic, payload) {
		ec.bus.cnt.echoesSkipped.Add(1)
		return
	}
	select {
	case ec.queue <- Message{Topic: topic, Payload: payload, QoS: pm.Qos(), Retained: pm.Retained()}:
	case <-ec.done:
	}
}

// subscribe counts a use of filter and, the first time, subscribes at the broker if it is
// connected (otherwise onConnect will).
func (ec *externalClient) subscribe(filter string) error {
	ec.mu.Lock()
	ec.filters[filter]++
	first := ec.filters[filter] == 1
	ec.mu.Unlock()
	if !first || !ec.client.IsConnectionOpen() {
		return nil
	}
	tok := ec.client.Subscribe(filter, ec.bus.cfg.QoS, nil)
	if err := waitToken(context.Background(), tok, ec.bus.cfg.External.ConnectTimeout.Duration); err != nil {
		if errors.Is(err, paho.ErrNotConnected) {
			return nil // lost meanwhile; onConnect subscribes
		}
		ec.release(filter)
		return fmt.Errorf("eventbus: subscribe %q on the external broker: %w", filter, err)
	}
	return nil
}

func (ec *externalClient) unsubscribe(filter string) {
	if !ec.release(filter) || !ec.client.IsConnectionOpen() {
		return
	}
	tok := ec.client.Unsubscribe(filter)
	if err := waitToken(context.Background(), tok, ec.bus.cfg.External.ConnectTimeout.Duration); err != nil {
		ec.bus.log.Warn("unsubscribe on the external broker failed", "filter", filter, "err", err)
	}
}

// release drops one use of filter and reports whether it was the last.
func (ec *externalClient) release(filter string) bool {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	ec.filters[filter]--
	if ec.filters[filter] > 0 {
		return false
	}
	delete(ec.filters, filter)
	return true
}

func (ec *externalClient) publish(ctx context.Context, m Message) error {
	// paho would queue the message while reconnecting and report success; an edge app
	// is better served by an error it can act on.
	if !ec.client.IsConnectionOpen() {
		return ErrDisconnected
	}
	tok := ec.client.Publish(m.Topic, m.QoS, m.Retained, m.Payload)
	if err := waitToken(ctx, tok, ec.bus.cfg.External.ConnectTimeout.Duration); err != nil {
		if errors.Is(err, paho.ErrNotConnected) {
			return ErrDisconnected
		}
		return fmt.Errorf("external broker: %w", err)
	}
	return nil
}

// waitToken waits for tok, ctx or timeout, whichever comes first.
func waitToken(ctx context.Context, tok paho.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no answer from the broker within %s", timeout)
	}
}

func readPassword(path string) (string, error) {
	b, err := readFileLimited(path, maxPasswordFileBytes)
	if err != nil {
		return "", fmt.Errorf("eventbus: external.passwordFile: %w", err)
	}
	return string(bytes.TrimRight(b, "\r\n")), nil
}

func loadTLS(c TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := readFileLimited(c.CAFile, maxPEMFileBytes)
		if err != nil {
			return nil, fmt.Errorf("eventbus: external.tls.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("eventbus: external.tls.caFile %q: no PEM certificate in it", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		certPEM, err := readFileLimited(c.CertFile, maxPEMFileBytes)
		if err != nil {
			return nil, fmt.Errorf("eventbus: external.tls.certFile: %w", err)
		}
		keyPEM, err := readFileLimited(c.KeyFile, maxPEMFileBytes)
		if err != nil {
			return nil, fmt.Errorf("eventbus: external.tls.keyFile: %w", err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("eventbus: external.tls certFile %q and keyFile %q: %w", c.CertFile, c.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}
