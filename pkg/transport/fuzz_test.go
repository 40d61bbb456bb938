package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/skerry-io/skerry/pkg/wire"
)

// FuzzReadFrame: whatever arrives, the frame reader never panics, never returns more than the
// cap, and rejects an over-cap length before reading any of the body.
func FuzzReadFrame(f *testing.F) {
	const limit = 1 << 10
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 4, 1})
	f.Add([]byte{0, 0, 0, 10, 'n', 'u', 'l', 'l'})
	f.Add([]byte{0, 0})
	f.Add(append(binary.BigEndian.AppendUint32(nil, 4), "null"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		frame, err := readFrame(r, limit, nil)
		if err == nil {
			if len(frame) == 0 || len(frame) > limit {
				t.Fatalf("frame of %d bytes accepted, limit %d", len(frame), limit)
			}
			if want := int(binary.BigEndian.Uint32(data)); len(frame) != want {
				t.Fatalf("frame of %d bytes, prefix says %d", len(frame), want)
			}
			// Whatever frame comes out, the decoder copes with it too.
			_, _ = wire.Decode(frame, wire.Limits{MaxMessageSize: limit})
			return
		}
		if errors.Is(err, wire.ErrTooLarge) && r.Len() != len(data)-frameHeaderSize {
			t.Fatalf("read %d body bytes of an over-cap frame", len(data)-frameHeaderSize-r.Len())
		}
		if !errors.Is(err, wire.ErrTooLarge) && !errors.Is(err, wire.ErrInvalid) &&
			!errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
