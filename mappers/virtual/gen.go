package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/skerry-io/skerry/mapper"
)

// genConfig is a property's visitor configData: how its simulated value moves.
type genConfig struct {
	Kind          string  // randomwalk (default), sine, counter, constant
	Min, Max      float64 // range of the value; default 0..100
	Step          float64 // largest change per read (randomwalk) or increment (counter); default 1
	PeriodSeconds float64 // period of the sine; default 60
	Initial       float64 // first value; default Min (sine ignores it)
	// InitialText is the raw "initial" for STRING and BYTES properties.
	InitialText string
}

func parseGenConfig(v map[string]any) (genConfig, error) {
	c := genConfig{}
	var err error
	if c.Kind, err = mapper.ConfigString(v, "kind", "randomwalk"); err != nil {
		return c, err
	}
	switch c.Kind {
	case "randomwalk", "sine", "counter", "constant":
	default:
		return c, fmt.Errorf("kind %q: want randomwalk, sine, counter or constant", c.Kind)
	}
	if c.Min, err = mapper.ConfigFloat(v, "min", 0); err != nil {
		return c, err
	}
	if c.Max, err = mapper.ConfigFloat(v, "max", 100); err != nil {
		return c, err
	}
	if c.Min > c.Max {
		return c, fmt.Errorf("min %g is above max %g", c.Min, c.Max)
	}
	if c.Step, err = mapper.ConfigFloat(v, "step", 1); err != nil {
		return c, err
	}
	if c.PeriodSeconds, err = mapper.ConfigFloat(v, "periodSeconds", 60); err != nil {
		return c, err
	}
	if c.PeriodSeconds <= 0 {
		return c, fmt.Errorf("periodSeconds %g must be positive", c.PeriodSeconds)
	}
	if c.InitialText, err = mapper.ConfigString(v, "initial", ""); err != nil {
		return c, err
	}
	if c.Initial, err = mapper.ConfigFloat(v, "initial", c.Min); err != nil {
		// Not a number: only STRING and BYTES properties use it, as text.
		c.Initial = c.Min
	}
	return c, nil
}

// generator produces the successive simulated values of one property.
type generator struct {
	cfg   genConfig
	start time.Time
	cur   float64
	rnd   *rand.Rand
}

func newGenerator(cfg genConfig, start time.Time, seed uint64) *generator {
	return &generator{
		cfg:   cfg,
		start: start,
		cur:   math.Min(math.Max(cfg.Initial, cfg.Min), cfg.Max),
		rnd:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

// next returns the value at time now; the first call returns the initial value (sine: its
// value at now).
func (g *generator) next(now time.Time, first bool) float64 {
	c := g.cfg
	switch c.Kind {
	case "sine":
		mid, amp := (c.Max+c.Min)/2, (c.Max-c.Min)/2
		phase := 2 * math.Pi * now.Sub(g.start).Seconds() / c.PeriodSeconds
		return mid + amp*math.Sin(phase)
	case "constant":
		return g.cur
	}
	if first {
		return g.cur
	}
	switch c.Kind {
	case "counter":
		g.cur += c.Step
		if g.cur > c.Max {
			g.cur = c.Min
		}
	case "randomwalk":
		g.cur += (g.rnd.Float64()*2 - 1) * c.Step
		g.cur = math.Min(math.Max(g.cur, c.Min), c.Max)
	}
	return g.cur
}

// toValue converts a simulated number to the property's type.
func toValue(t mapper.Type, f float64, cfg genConfig) mapper.Value {
	switch t {
	case mapper.TypeInt:
		return mapper.IntValue(int64(math.Round(f)))
	case mapper.TypeFloat:
		return mapper.FloatValue(float32(f))
	case mapper.TypeDouble:
		return mapper.DoubleValue(f)
	case mapper.TypeBoolean:
		// Upper half of the range is true: a sine gives a square wave, a counter toggles.
		return mapper.BoolValue(f > (cfg.Min+cfg.Max)/2)
	case mapper.TypeBytes:
		return mapper.BytesValue([]byte(cfg.InitialText))
	}
	return mapper.StringValue(cfg.InitialText)
}
