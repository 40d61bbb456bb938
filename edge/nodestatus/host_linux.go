package nodestatus

import (
	"fmt"
	"syscall"
)

// syscall rather than golang.org/x/sys/unix: x/sys is only an indirect requirement in go.mod,
// and the two calls needed here are in the standard library on Linux.

func statfs(path string) (fsStats, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return fsStats{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize) //nolint:gosec // block sizes are small and positive
	return fsStats{Total: st.Blocks * bs, Free: st.Bavail * bs}, nil
}

func unameRelease() (string, error) {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return cString(u.Release[:]), nil
}

// cString converts a NUL-terminated utsname field; its element type is int8 or uint8
// depending on the architecture.
func cString[T int8 | uint8](a []T) string {
	b := make([]byte, 0, len(a))
	for _, c := range a {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}
