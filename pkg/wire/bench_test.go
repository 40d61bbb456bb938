package wire

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func benchMessages(b *testing.B) map[string][]byte {
	b.Helper()
	out := map[string][]byte{}
	for name, file := range map[string]string{"pod": "pod-insert.json", "keepalive": "keepalive.json"} {
		raw, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			b.Fatal(err)
		}
		out[name] = compactJSON(b, raw) // what a Go peer actually sends
	}
	return out
}

// BenchmarkDecode: a pod insert (about 2 KB of content) and a keepalive, the two messages that
// dominate a hub's traffic (object sync and, with thousands of nodes, keepalives).
func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"pod", "keepalive"} {
		data := benchMessages(b)[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Decode(data, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, name := range []string{"pod", "keepalive"} {
		m, err := Decode(benchMessages(b)[name], Limits{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(m); err != nil {
					b.Fatal(err)
				}
			}
		})
		// A transport reusing one buffer per session.
		b.Run(name+"/append", func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				if buf, err = AppendEncode(buf[:0], m, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseResource(b *testing.B) {
	b.Run("edge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseResource("default/pod/web-1-7c9d8f6b5-x2k4q"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("toEdge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ToEdge("node/edge-1/default/pod/web-1-7c9d8f6b5-x2k4q", "edge-1"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecodeStdlib is a reference point, not a target: encoding/json into the same
// struct, which checks neither duplicates nor unknown fields.
func BenchmarkDecodeStdlib(b *testing.B) {
	for _, name := range []string{"pod", "keepalive"} {
		data := benchMessages(b)[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var m Message
				if err := json.Unmarshal(data, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
