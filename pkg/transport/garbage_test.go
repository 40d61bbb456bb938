package transport

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/quic-go/quic-go"

	"github.com/skerry-io/skerry/pkg/wire"
)

// Garbage must close the offending connection with a reason and leave the server serving.

func TestWebSocketGarbage(t *testing.T) {
	f := newPKI(t)
	tc := transports()[0]
	cases := []struct {
		name  string
		typ   int
		data  string
		code  int
		errIs error
	}{
		{"not JSON", websocket.TextMessage, "hello there", CodeWSInvalid, wire.ErrInvalid},
		{"JSON null", websocket.TextMessage, "null", CodeWSInvalid, wire.ErrInvalid},
		{"object missing fields", websocket.TextMessage, `{"header":{}}`, CodeWSInvalid, wire.ErrInvalid},
		{"binary frame", websocket.BinaryMessage, `{}`, CodeWSUnsupported, wire.ErrInvalid},
	}
	checkGoroutines(t)
	readErr := make(chan error, 1)
	addr, _ := startServer(t, tc, f, Options{}, func(ctx context.Context, c Conn) {
		for {
			m, err := c.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			if err := c.Write(ctx, m.Ack()); err != nil {
				return
			}
		}
	})
	for _, gc := range cases {
		t.Run(gc.name, func(t *testing.T) {
			d := websocket.Dialer{TLSClientConfig: f.client(t, f.edge1)}
			h := http.Header{HeaderNodeID: {"edge-1"}, HeaderProjectID: {DefaultProjectID}}
			ws, _, err := d.Dial("wss://"+addr+"/"+DefaultProjectID+"/edge-1/events", h)
			must(t, err)
			defer ws.Close()
			must(t, ws.WriteMessage(gc.typ, []byte(gc.data)))
			_, _, err = ws.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != gc.code || ce.Text == "" {
				t.Fatalf("client got %v, want close code %d with a reason", err, gc.code)
			}
			t.Logf("closed with %d %q", ce.Code, ce.Text)
			if err := <-readErr; !errors.Is(err, gc.errIs) {
				t.Fatalf("server read error %v, want %v", err, gc.errIs)
			}
		})
	}
	c := mustDial(t, tc, addr, f)
	must(t, c.Write(ctxT(t), testMsg(1, "ok")))
	if _, err := c.Read(ctxT(t)); err != nil {
		t.Fatalf("good connection after garbage: %v", err)
	}
}

func TestQUICGarbage(t *testing.T) {
	f := newPKI(t)
	tc := transports()[1]
	frame := func(body string) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
		return append(b, body...)
	}
	cases := []struct {
		name string
		data []byte
		code quic.ApplicationErrorCode
	}{
		{"not JSON", frame("hello there"), CodeQUICInvalid},
		{"JSON null", frame("null"), CodeQUICInvalid},
		{"empty frame", frame(""), CodeQUICInvalid},
		{"length over the cap", []byte{0xff, 0xff, 0xff, 0xff, '{'}, CodeQUICTooLarge},
		{"truncated frame then FIN", frame("{\"header\"")[:6], CodeQUICProtocol},
	}
	checkGoroutines(t)
	addr, _ := startServer(t, tc, f, Options{}, func(ctx context.Context, c Conn) {
		for {
			m, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, m.Ack()); err != nil {
				return
			}
		}
	})
	for _, gc := range cases {
		t.Run(gc.name, func(t *testing.T) {
			ctx := ctxT(t)
			qc, err := quic.DialAddr(ctx, addr, withALPN(f.client(t, f.edge1), ALPNQUIC), nil)
			must(t, err)
			defer qc.CloseWithError(0, "")
			st, err := qc.OpenStreamSync(ctx)
			must(t, err)
			hb, _ := json.Marshal(hello{NodeID: "edge-1", ProjectID: DefaultProjectID})
			_, err = st.Write(frame(string(hb)))
			must(t, err)
			var ack [4]byte
			_, err = io.ReadFull(st, ack[:])
			must(t, err)
			_, err = st.Write(gc.data)
			must(t, err)
			if gc.code == CodeQUICProtocol {
				must(t, st.Close())
			}
			_, err = io.ReadAll(st)
			var ae *quic.ApplicationError
			if !errors.As(err, &ae) || ae.ErrorCode != gc.code || ae.ErrorMessage == "" {
				t.Fatalf("client got %v, want application error %d with a reason", err, gc.code)
			}
			t.Logf("closed with %d %q", ae.ErrorCode, ae.ErrorMessage)
		})
	}
	c := mustDial(t, tc, addr, f)
	must(t, c.Write(ctxT(t), testMsg(1, "ok")))
	if _, err := c.Read(ctxT(t)); err != nil {
		t.Fatalf("good connection after garbage: %v", err)
	}
}
