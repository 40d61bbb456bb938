//go:build !linux

package server

import "time"

// fsStats is not implemented off Linux; Edged runs on Linux nodes only.
func fsStats(string, time.Time) *FsStats { return nil }
