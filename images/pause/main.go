// Command pause is the PID 1 of every pod sandbox: it holds the pod's namespaces open, reaps
// orphaned children re-parented to it (shared PID namespace), and exits cleanly when asked to stop.
//
// Build it static and small: CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "--version") {
		fmt.Println("skerry pause 3.10")
		return
	}
	// PID 1 gets no default signal dispositions from the kernel, so without explicit handlers
	// SIGTERM would be ignored and every sandbox stop would wait for the SIGKILL.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		switch sig {
		case syscall.SIGCHLD:
			reap()
		default:
			os.Exit(0)
		}
	}
}

// reap collects every exited child; SIGCHLD coalesces, so one signal may stand for many exits.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
