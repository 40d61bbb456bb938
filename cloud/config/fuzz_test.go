package config

import (
	"testing"

	"github.com/skerry-io/skerry/pkg/configfile"
)

// A configuration file is outside data: whatever it holds, decoding and validating it
// answer with an error, never a panic, and a file that passes validates again the same.
func FuzzDecodeAndValidate(f *testing.F) {
	f.Add(Minimal())
	b, err := configfile.Marshal(Default())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("apiVersion: cloudcore.config.skerry.io/v1alpha1\nkind: CloudCore\nadmin: {address: ':10002'}\nadmission: {url: 'https://[::1]:1/x'}\n"))
	f.Add([]byte("apiVersion: cloudcore.config.skerry.io/v1alpha1\nkind: CloudCore\nhub: {websocket: {address: '[::]:0'}}\n"))
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
