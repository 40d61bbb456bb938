// Package memtrim lets a long-running binary give back the pages of its executable that only
// start-up used.
//
// A Go binary's code and read-only data are mapped from the executable file. Start-up touches
// a great deal of it once (package initialisation, protobuf and API type registration, config
// parsing, the first connections), and the kernel maps more around every fault: readahead and
// fault-around bring in up to 64 KiB per touch. Those pages stay mapped, and counted in the
// process's RSS, for as long as it runs, although it never uses most of them again. On a small
// edge device that is memory the kernel cannot easily reclaim: mapped pages sit on the active
// list, unmapped page cache is the first to go.
//
// [Trim] unmaps the executable's read-only pages (they are clean and come back from the page
// cache or the file on the next touch) and marks those mappings random-access, so that from
// then on only pages the process really uses are mapped, one at a time. Writable mappings (the
// binary's data and every heap) are never touched.
package memtrim

import (
	"context"
	"log/slog"
	"time"
)

// Result says what Trim released.
type Result struct {
	Mappings int   // read-only mappings of the executable advised
	Bytes    int64 // their total size (not all of it was resident)
}

// After waits for delay, then trims once and logs the result, unless ctx ends first. It is
// meant to run as one of a daemon's goroutines, with delay long enough for start-up to finish.
func After(ctx context.Context, delay time.Duration, log *slog.Logger) {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	res, err := Trim()
	if err != nil {
		log.Warn("could not release start-up pages of the executable", "err", err)
		return
	}
	log.Info("released start-up pages of the executable", "mappings", res.Mappings, "bytes", res.Bytes)
}
