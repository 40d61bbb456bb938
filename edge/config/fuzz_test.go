package config

import (
	"testing"

	"github.com/skerry-io/skerry/pkg/configfile"
)

// A configuration file is outside data: whatever it holds, decoding and validating it
// answer with an error, never a panic, and validating twice gives the same answer.
func FuzzDecodeAndValidate(f *testing.F) {
	f.Add(Minimal())
	b, err := configfile.Marshal(valid())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("apiVersion: edgecore.config.skerry.io/v1alpha1\nkind: EdgeCore\nhub: {server: 'wss://x:1'}\nmetaServer: {address: 'localhost:10350'}\n"))
	f.Add([]byte("apiVersion: edgecore.config.skerry.io/v1alpha1\nkind: EdgeCore\ndeviceTwin: {dmi: {group: '0x1'}}\neventBus: {mode: both, internal: {address: ':1883'}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		if err := configfile.Decode(data, Meta, c); err != nil {
			return
		}
		err := c.Validate()
		if (err == nil) != (c.Validate() == nil) {
			t.Fatal("Validate is not deterministic")
		}
	})
}
