package sim

import "syscall"

// RaiseNoFileLimit raises the soft open-file limit to the hard limit and returns both. Every
// simulated node holds a socket of its own (and a hub in the same process one more per node),
// so a few thousand nodes pass the usual soft limit of 1024 long before any other resource
// runs out; the hard limit is what an unprivileged process may take without asking.
func RaiseNoFileLimit() (soft, hard uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, 0, err
		}
	}
	return l.Cur, l.Max, nil
}
