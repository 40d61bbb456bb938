// Command devices measures the device path (issue 6).
//
//	devices twin [flags]   twin updates/s from MQTT into the edge store and the outbox,
//	                       in one process: a real EventBus (internal broker), a real store
//	                       (fsync on commit) and a devicetwin.Twin, with paho MQTT clients;
//	                       once with coalescing and once without.
//	devices cloud [flags]  with the real cloudcore and edgecore: DMI ReportDeviceStatus →
//	                       DeviceStatus in the API server latency, and edgecore's RSS with
//	                       0 and with 1,000 devices, the program acting as the mapper.
//
// Everything it starts and creates is stopped and removed at exit; bench/devices.sh wraps it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: devices twin|cloud [flags] (-h for the flags)")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "twin":
		err = runTwin(os.Args[2:])
	case "cloud":
		err = runCloud(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want twin or cloud", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "devices:", err)
		os.Exit(1)
	}
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "devices: "+format+"\n", args...)
}

// signalContext ends on SIGINT or SIGTERM, so that cleanup runs.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// percentile is the nearest-rank percentile of ds (0 if empty); it sorts ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(p*float64(len(ds))+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
