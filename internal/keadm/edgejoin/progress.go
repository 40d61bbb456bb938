package edgejoin

import (
	"fmt"
	"io"
	"time"
)

// progress prints numbered steps as they go: "[2/6] writing the configuration ... done (0.1s)".
// A step with detail lines closes on its own line.
type progress struct {
	w     io.Writer
	total int
	n     int
	start time.Time
	open  bool // the step's header line waits for its result
}

func (p *progress) begin(desc string) {
	p.n++
	p.start = time.Now()
	fmt.Fprintf(p.w, "[%d/%d] %s ...", p.n, p.total, desc)
	p.open = true
}

// detail prints an indented line under the current step.
func (p *progress) detail(format string, args ...any) {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
	fmt.Fprintf(p.w, "      "+format+"\n", args...)
}

// end closes the step with done or FAILED and its duration; it returns err.
func (p *progress) end(err error) error {
	word := "done"
	if err != nil {
		word = "FAILED"
	}
	prefix := " "
	if !p.open {
		prefix = "      "
	}
	fmt.Fprintf(p.w, "%s%s (%.1fs)\n", prefix, word, time.Since(p.start).Seconds())
	p.open = false
	return err
}
