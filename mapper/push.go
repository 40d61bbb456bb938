package mapper

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Reading is the JSON document pushed to HTTP and MQTT destinations, one per value read.
type Reading struct {
	Namespace    string `json:"namespace"`
	DeviceName   string `json:"deviceName"`
	PropertyName string `json:"propertyName"`
	// Value is the canonical string form (see Value).
	Value string `json:"value"`
	// Type is the lower-case model type: "int", "float", ...
	Type string `json:"type"`
	// Timestamp is when the value was read, in unix milliseconds.
	Timestamp int64 `json:"timestamp"`
}

const (
	pushQueueLen   = 64
	mqttTimeout    = 5 * time.Second
	maxMQTTBrokers = 64
	// mqttRetry is how long paho sleeps between first-connect attempts. Its default (30 s)
	// delays the first push after a broker comes up and keeps the connect goroutine alive
	// that long after the mapper stops.
	mqttRetry = time.Second
)

type pushJob struct {
	push    *PushMethod
	reading Reading
}

// pusher sends readings to HTTP endpoints and MQTT brokers. MQTT clients are shared by all
// devices that push to the same broker and live until the mapper stops.
type pusher struct {
	clientID string
	log      *slog.Logger
	http     *http.Client

	mu      sync.Mutex
	brokers map[string]mqtt.Client
	// connects are the Connect tokens: each completes when its connect goroutine ends.
	connects []mqtt.Token
	closed   bool
}

func newPusher(name string, log *slog.Logger) *pusher {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &pusher{
		clientID: name + "-" + hex.EncodeToString(b[:]),
		log:      log,
		http:     &http.Client{},
		brokers:  map[string]mqtt.Client{},
	}
}

// send delivers one reading to every destination of its push method, returning the first error.
func (p *pusher) send(ctx context.Context, j pushJob) error {
	body, err := json.Marshal(j.reading)
	if err != nil {
		return err
	}
	var firstErr error
	if h := j.push.HTTP; h != nil {
		if err := p.postHTTP(ctx, h, body); err != nil {
			firstErr = fmt.Errorf("http push: %w", err)
		}
	}
	if q := j.push.MQTT; q != nil {
		if err := p.publishMQTT(q, body); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("mqtt push: %w", err)
		}
	}
	return firstErr
}

// httpURL makes the endpoint of an HTTP push method; the hostname may carry the scheme.
func httpURL(h *PushHTTP) string {
	host := h.Hostname
	if !strings.Contains(host, "://") {
		host = "http://" + host
	}
	host = strings.TrimSuffix(host, "/")
	u := host
	if h.Port > 0 {
		u += ":" + strconv.FormatInt(h.Port, 10)
	}
	if h.RequestPath != "" && !strings.HasPrefix(h.RequestPath, "/") {
		u += "/"
	}
	return u + h.RequestPath
}

func (p *pusher) postHTTP(ctx context.Context, h *PushHTTP, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, httpURL(h), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Drain a little so the connection can be reused; never read an unbounded answer.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s", httpURL(h), resp.Status)
	}
	return nil
}

func (p *pusher) publishMQTT(q *PushMQTT, body []byte) error {
	c, err := p.broker(q.Address)
	if err != nil {
		return err
	}
	if !c.IsConnectionOpen() {
		return fmt.Errorf("not connected to %s", q.Address)
	}
	t := c.Publish(q.Topic, q.QoS, q.Retained, body)
	if !t.WaitTimeout(mqttTimeout) {
		return fmt.Errorf("publish to %s: timed out", q.Address)
	}
	return t.Error()
}

// broker returns the client for address, creating it (connecting in the background) on first use.
func (p *pusher) broker(address string) (mqtt.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("mapper is stopping")
	}
	if c, ok := p.brokers[address]; ok {
		return c, nil
	}
	if len(p.brokers) >= maxMQTTBrokers {
		return nil, fmt.Errorf("more than %d MQTT brokers", maxMQTTBrokers)
	}
	opts := mqtt.NewClientOptions().
		AddBroker(address).
		SetClientID(p.clientID + "-" + strconv.Itoa(len(p.brokers))).
		SetConnectTimeout(mqttTimeout).
		SetWriteTimeout(mqttTimeout).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(mqttRetry).
		SetMaxReconnectInterval(30 * time.Second).
		SetCleanSession(true)
	c := mqtt.NewClient(opts)
	// With ConnectRetry the client keeps trying in the background; publishes fail until then.
	p.connects = append(p.connects, c.Connect())
	p.brokers[address] = c
	p.log.Info("mqtt push broker added", "broker", address)
	return c, nil
}

func (p *pusher) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.brokers {
		c.Disconnect(250)
	}
	// A client still trying its first connect stops only after the attempt under way and
	// one retry sleep; wait for that so no goroutine outlives the mapper.
	deadline := time.Now().Add(mqttTimeout + mqttRetry)
	for _, t := range p.connects {
		if !t.WaitTimeout(time.Until(deadline)) {
			p.log.Warn("mqtt push client did not stop in time")
			break
		}
	}
	p.brokers, p.connects = nil, nil
	p.http.CloseIdleConnections()
}
