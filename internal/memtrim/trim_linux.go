package memtrim

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mapsLimit bounds the read of /proc/self/maps: a Go process has a few dozen mappings.
const mapsLimit = 4 << 20

// Trim advises the kernel that the executable's read-only mappings are accessed randomly and
// drops their pages from this process (see the package comment).
func Trim() (Result, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return Result{}, fmt.Errorf("memtrim: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return Result{}, fmt.Errorf("memtrim: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, mapsLimit))
	if err != nil {
		return Result{}, fmt.Errorf("memtrim: /proc/self/maps: %w", err)
	}
	ranges, err := readOnlyRanges(data, exe)
	if err != nil {
		return Result{}, err
	}
	var res Result
	var errs []error
	for _, r := range ranges {
		// Random first: DONTNEED alone would let fault-around map the neighbours back.
		if err := madvise(r, unix.MADV_RANDOM); err != nil {
			errs = append(errs, fmt.Errorf("madvise random %#x-%#x: %w", r.start, r.end, err))
			continue
		}
		if err := madvise(r, unix.MADV_DONTNEED); err != nil {
			errs = append(errs, fmt.Errorf("madvise dontneed %#x-%#x: %w", r.start, r.end, err))
			continue
		}
		res.Mappings++
		res.Bytes += int64(r.end - r.start)
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("memtrim: %w", errors.Join(errs...))
	}
	return res, nil
}

type addrRange struct{ start, end uintptr }

// madvise takes the range as numbers: the pages are not Go memory, so no Go pointer is made.
func madvise(r addrRange, advice int) error {
	if _, _, e := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, uintptr(advice)); e != 0 {
		return e
	}
	return nil
}

// readOnlyRanges returns the mappings of the file exe that are neither writable nor shared,
// from the text of /proc/self/maps. Only those are safe to drop: their pages are clean copies
// of the file. A writable private mapping holds changes the file does not have.
func readOnlyRanges(maps []byte, exe string) ([]addrRange, error) {
	var out []addrRange
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		// address perms offset dev inode pathname (the path may contain spaces)
		fields := strings.SplitN(sc.Text(), " ", 6)
		if len(fields) < 6 {
			continue
		}
		path := strings.TrimLeft(fields[5], " ")
		if path != exe {
			continue
		}
		perms := fields[1]
		if len(perms) != 4 || perms[1] == 'w' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			return nil, fmt.Errorf("memtrim: bad maps line %q", sc.Text())
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("memtrim: bad maps line %q", sc.Text())
		}
		out = append(out, addrRange{uintptr(start), uintptr(end)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("memtrim: /proc/self/maps: %w", err)
	}
	return out, nil
}
