package mapper

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/skerry-io/skerry/api/dmi/v1beta1"
)

func TestParseValue(t *testing.T) {
	for _, c := range []struct {
		t    Type
		in   string
		want string
		ok   bool
	}{
		{TypeInt, " 42 ", "42", true},
		{TypeInt, "20.0", "20", true},
		{TypeInt, "20.5", "", false},
		{TypeInt, "1e30", "", false},
		{TypeFloat, "21.50", "21.5", true},
		{TypeFloat, "NaN", "", false},
		{TypeDouble, "-1e-3", "-0.001", true},
		{TypeDouble, "Inf", "", false},
		{TypeBoolean, "TRUE", "true", true},
		{TypeBoolean, "yes", "", false},
		{TypeBytes, "AQI=", "AQI=", true},
		{TypeBytes, "!!", "", false},
		{TypeString, " as is ", " as is ", true},
		{"STREAM", "x", "", false},
	} {
		v, err := ParseValue(c.t, c.in)
		if (err == nil) != c.ok || (c.ok && (v.String() != c.want || v.Type() != c.t)) {
			t.Errorf("ParseValue(%s, %q) = %q, %v", c.t, c.in, v.String(), err)
		}
	}
}

func TestCheck(t *testing.T) {
	lo, hi := 0.0, 100.0
	p := &Property{Name: "p", Type: TypeInt, Min: &lo, Max: &hi}
	if v, err := p.Check(DoubleValue(50)); err != nil || v.Type() != TypeInt || v.String() != "50" {
		t.Errorf("Check(50.0) = %v, %v", v, err)
	}
	for _, bad := range []Value{IntValue(-1), IntValue(101), DoubleValue(1.5), StringValue("x"), {}} {
		if _, err := p.Check(bad); err == nil {
			t.Errorf("Check(%q) accepted", bad.String())
		}
	}
	s := &Property{Name: "s", Type: TypeString, Min: &lo}
	if _, err := s.Check(StringValue("any")); err != nil {
		t.Errorf("string checked against a range: %v", err)
	}
}

func TestDecodeDevice(t *testing.T) {
	d := testDevice("d", "5", 0)
	d.Spec.Properties = append(d.Spec.Properties,
		&v1beta1.DeviceProperty{Name: "unknown"},
		&v1beta1.DeviceProperty{Name: "temperature"}, // listed twice
	)
	dev, skipped, err := decodeDevice(d, testModel())
	if err != nil {
		t.Fatal(err)
	}
	if len(dev.Properties) != 2 || len(skipped) != 2 {
		t.Fatalf("properties %d, skipped %v", len(dev.Properties), skipped)
	}
	sp := dev.Properties[1]
	if sp.Type != TypeInt || !sp.Writable() || *sp.Min != 0 || *sp.Max != 100 || sp.Desired != "5" ||
		sp.CollectCycle != defaultCycle || sp.ReportCycle != defaultCycle {
		t.Errorf("setpoint = %+v", sp)
	}
	m := testModel()
	m.Spec.Properties[1].Minimum = "ten"
	if dev, skipped, err := decodeDevice(d, m); err != nil || len(dev.Properties) != 1 || len(skipped) != 3 {
		t.Errorf("bad minimum: %v, %v", skipped, err)
	}
}

// FuzzDecodeDevice decodes arbitrary DMI devices and models as the edge could send them.
func FuzzDecodeDevice(f *testing.F) {
	db, _ := proto.Marshal(testDevice("d", "5", 100))
	mb, _ := proto.Marshal(testModel())
	f.Add(db, mb)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, devBytes, modelBytes []byte) {
		var d v1beta1.Device
		var m v1beta1.DeviceModel
		if proto.Unmarshal(devBytes, &d) != nil || proto.Unmarshal(modelBytes, &m) != nil {
			return
		}
		dev, _, err := decodeDevice(&d, &m)
		if err != nil {
			return
		}
		for _, p := range dev.Properties {
			if p.CollectCycle < minCycle || p.ReportCycle < minCycle {
				t.Fatalf("cycle below the minimum: %+v", p)
			}
			if v, err := ParseValue(p.Type, p.Desired); err == nil {
				_, _ = p.Check(v)
			}
		}
	})
}

// FuzzParseValue parses desired values as they come from the cloud.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"1", "-2.5", "true", "AQI=", "1e400", "0x10", ""} {
		f.Add("INT", s)
		f.Add("FLOAT", s)
	}
	f.Fuzz(func(t *testing.T, typ, s string) {
		v, err := ParseValue(Type(typ), s)
		if err != nil {
			return
		}
		// The canonical form parses to itself.
		w, err := ParseValue(v.Type(), v.String())
		if err != nil || w != v {
			t.Fatalf("%s %q -> %q -> %q, %v", typ, s, v.String(), w.String(), err)
		}
	})
}
