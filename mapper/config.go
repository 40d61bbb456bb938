package mapper

import (
	"fmt"
	"math"
	"strconv"
)

// Helpers for drivers reading decoded configData (Device.ProtocolConfig, Property.Visitor).
// Numbers arrive as int64 or float64 depending on how the edge encoded them, and sometimes as
// strings; these accept all three.

// ConfigString returns m[key] as a string, or def when absent.
func ConfigString(m map[string]any, key, def string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case int64, uint64, float64, bool:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("%s: want a string, got %T", key, v)
}

// ConfigFloat returns m[key] as a finite number, or def when absent.
func ConfigFloat(m map[string]any, key string, def float64) (float64, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	var f float64
	switch x := v.(type) {
	case int64:
		f = float64(x)
	case uint64:
		f = float64(x)
	case float64:
		f = x
	case string:
		var err error
		if f, err = strconv.ParseFloat(x, 64); err != nil {
			return 0, fmt.Errorf("%s: %q is not a number", key, x)
		}
	default:
		return 0, fmt.Errorf("%s: want a number, got %T", key, v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s: %v is not finite", key, f)
	}
	return f, nil
}

// ConfigInt returns m[key] as an integer, or def when absent; a fractional number is an error.
func ConfigInt(m map[string]any, key string, def int64) (int64, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return def, nil
	}
	if i, ok := v.(int64); ok {
		return i, nil
	}
	f, err := ConfigFloat(m, key, 0)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, fmt.Errorf("%s: %v is not an integer", key, f)
	}
	return int64(f), nil
}
