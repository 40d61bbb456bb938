//go:build linux

package modbus

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var discardLog = slog.New(slog.DiscardHandler)

// withFd runs fn on f's descriptor without taking it out of non-blocking mode (f.Fd would).
func withFd(t *testing.T, f *os.File, fn func(fd int) error) {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		t.Fatal(err)
	}
	if ferr != nil {
		t.Fatal(ferr)
	}
}

// openPTY returns a pseudo-terminal's master and its slave's path. It also keeps the slave
// open until the test ends, so that the master does not see a hangup when the client closes
// its own descriptor, and returns that descriptor for inspecting the slave's termios.
func openPTY(t *testing.T) (master *os.File, slavePath string, keeper *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	withFd(t, master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock pty: %w", err)
		}
		n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
		if err != nil {
			return fmt.Errorf("pty number: %w", err)
		}
		slavePath = fmt.Sprintf("/dev/pts/%d", n)
		return nil
	})
	keeper, err = os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Skipf("open pty slave: %v", err)
	}
	t.Cleanup(func() { keeper.Close() })
	return master, slavePath, keeper
}

func getTermios(t *testing.T, f *os.File) *unix.Termios {
	t.Helper()
	var tio *unix.Termios
	withFd(t, f, func(fd int) (err error) {
		tio, err = unix.IoctlGetTermios(fd, unix.TCGETS)
		return err
	})
	return tio
}

// setCooked puts the slave in the line discipline's default "cooked" mode, so that tests see
// openSerial undo it.
func setCooked(t *testing.T, f *os.File) {
	t.Helper()
	withFd(t, f, func(fd int) error {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return err
		}
		tio.Iflag |= unix.ICRNL | unix.IXON | unix.BRKINT
		tio.Oflag |= unix.OPOST | unix.ONLCR
		tio.Lflag |= unix.ICANON | unix.ECHO | unix.ECHOE | unix.ISIG | unix.IEXTEN
		tio.Cflag = tio.Cflag&^unix.CBAUD | unix.B38400 | unix.CSTOPB
		return unix.IoctlSetTermios(fd, unix.TCSETS, tio)
	})
}

// checkRaw fails unless tio is in the raw mode openSerial sets.
func checkRaw(t *testing.T, tio *unix.Termios) {
	t.Helper()
	if tio.Iflag&rawIflag != 0 || tio.Oflag&unix.OPOST != 0 || tio.Lflag&rawLflag != 0 {
		t.Errorf("not raw: iflag %#x oflag %#x lflag %#x", tio.Iflag, tio.Oflag, tio.Lflag)
	}
	if tio.Iflag&(unix.ICRNL|unix.IXON) != 0 || tio.Lflag&(unix.ECHO|unix.ICANON|unix.ISIG) != 0 {
		t.Errorf("CR/LF translation, flow control, echo or canonical mode left on: iflag %#x lflag %#x", tio.Iflag, tio.Lflag)
	}
	if tio.Cflag&(unix.CLOCAL|unix.CREAD) != unix.CLOCAL|unix.CREAD || tio.Cflag&unix.CRTSCTS != 0 {
		t.Errorf("cflag %#x: want CLOCAL|CREAD, no CRTSCTS", tio.Cflag)
	}
	if tio.Cc[unix.VMIN] != 1 || tio.Cc[unix.VTIME] != 0 {
		t.Errorf("VMIN %d VTIME %d, want 1 0", tio.Cc[unix.VMIN], tio.Cc[unix.VTIME])
	}
}

// setTermios on its own, for the settings a pseudo-terminal does not keep (data bits, parity).
func TestSetTermios(t *testing.T) {
	cooked := unix.Termios{
		Iflag: unix.ICRNL | unix.IXON | unix.IXANY | unix.IMAXBEL,
		Oflag: unix.OPOST | unix.ONLCR,
		Cflag: unix.B38400 | unix.CS7 | unix.PARENB | unix.CSTOPB | unix.CRTSCTS | unix.HUPCL,
		Lflag: unix.ICANON | unix.ECHO | unix.ECHOE | unix.ISIG | unix.IEXTEN,
	}
	cooked.Cc[unix.VMIN], cooked.Cc[unix.VTIME] = 0, 5
	for _, tc := range []struct {
		line                 SerialConfig
		baud, size           uint32
		parenb, parodd, stop bool
	}{
		{SerialConfig{}, unix.B38400, unix.CS7, true, false, true},
		{SerialConfig{BaudRate: 9600, DataBits: 8, Parity: ParityNone, StopBits: 1}, unix.B9600, unix.CS8, false, false, false},
		{SerialConfig{BaudRate: 19200, DataBits: 8, Parity: ParityEven, StopBits: 1}, unix.B19200, unix.CS8, true, false, false},
		{SerialConfig{BaudRate: 1200, DataBits: 7, Parity: ParityOdd, StopBits: 2}, unix.B1200, unix.CS7, true, true, true},
		{SerialConfig{BaudRate: 230400, DataBits: 5, Parity: ParityNone, StopBits: 2}, unix.B230400, unix.CS5, false, false, true},
		{SerialConfig{BaudRate: 115200, DataBits: 6}, unix.B115200, unix.CS6, true, false, true},
		{SerialConfig{Parity: ParityOdd}, unix.B38400, unix.CS7, true, true, true},
	} {
		tio := cooked
		setTermios(&tio, tc.line)
		t.Run(fmt.Sprint(tc.line), func(t *testing.T) { checkLine(t, &tio, tc.baud, tc.size, tc.parenb, tc.parodd, tc.stop) })
		if tio.Iflag&unix.IMAXBEL == 0 || tio.Cflag&unix.HUPCL == 0 {
			t.Errorf("%v: unrelated flags cleared: iflag %#x cflag %#x", tc.line, tio.Iflag, tio.Cflag)
		}
	}
	// Every standard rate has a code, and the code is not reused.
	seen := map[uint32]bool{}
	for _, r := range StandardBaudRates {
		tio := cooked
		setTermios(&tio, SerialConfig{BaudRate: r})
		code := tio.Cflag & unix.CBAUD
		if code == 0 || seen[code] || code != baudCodes[r] || tio.Ospeed != uint32(r) {
			t.Errorf("rate %d: code %#x ospeed %d", r, code, tio.Ospeed)
		}
		seen[code] = true
	}
}

func checkLine(t *testing.T, tio *unix.Termios, baud, size uint32, parenb, parodd, stop bool) {
	t.Helper()
	checkRaw(t, tio)
	if got := tio.Cflag & unix.CBAUD; got != baud {
		t.Errorf("baud code %#x, want %#x", got, baud)
	}
	if got := tio.Cflag & unix.CIBAUD; got != 0 {
		t.Errorf("input baud %#x, want 0 (same as output)", got)
	}
	if got := tio.Cflag & unix.CSIZE; got != size {
		t.Errorf("CSIZE %#x, want %#x", got, size)
	}
	if got := tio.Cflag&unix.PARENB != 0; got != parenb {
		t.Errorf("PARENB %v, want %v", got, parenb)
	}
	if got := tio.Cflag&unix.PARODD != 0; got != parodd {
		t.Errorf("PARODD %v, want %v", got, parodd)
	}
	if got := tio.Cflag&unix.CSTOPB != 0; got != stop {
		t.Errorf("CSTOPB %v, want %v", got, stop)
	}
}

// The settings as the kernel keeps them on a pseudo-terminal slave, read back with TCGETS.
// Linux ptys force 8 data bits without parity, so those are the ones asked for here.
func TestSerialApplyTermios(t *testing.T) {
	_, path, keeper := openPTY(t)
	for _, tc := range []struct {
		line SerialConfig
		baud uint32
		stop bool
	}{
		{SerialConfig{BaudRate: 9600, DataBits: 8, Parity: ParityNone, StopBits: 1}, unix.B9600, false},
		{SerialConfig{BaudRate: 1200, DataBits: 8, Parity: ParityNone, StopBits: 2}, unix.B1200, true},
		{SerialConfig{BaudRate: 230400, DataBits: 8, StopBits: 2}, unix.B230400, true},
		{SerialConfig{BaudRate: 115200, StopBits: 1}, unix.B115200, false},
	} {
		t.Run(fmt.Sprint(tc.line), func(t *testing.T) {
			setCooked(t, keeper)
			rw, err := openSerial(path, tc.line, discardLog)
			if err != nil {
				t.Fatal(err)
			}
			defer rw.Close()
			// Read back through another descriptor: the settings belong to the line.
			checkLine(t, getTermios(t, keeper), tc.baud, unix.CS8, false, false, tc.stop)
		})
	}
	// A setting the driver drops is an error, not a silently different line.
	rw, err := openSerial(path, SerialConfig{Parity: ParityEven}, discardLog)
	if err == nil {
		// A kernel whose ptys keep parity.
		rw.Close()
		if tio := getTermios(t, keeper); tio.Cflag&unix.PARENB == 0 {
			t.Errorf("parity even accepted, but cflag %#x", tio.Cflag)
		}
	} else if !strings.Contains(err.Error(), "did not accept [parity even]") || !strings.Contains(err.Error(), path) {
		t.Errorf("parity even on a pty: %v", err)
	}
}

// A zero SerialConfig makes the line raw but keeps the OS's speed and framing.
func TestSerialZeroConfigKeepsLine(t *testing.T) {
	_, path, keeper := openPTY(t)
	setCooked(t, keeper) // B38400, two stop bits
	rw, err := openSerial(path, SerialConfig{}, discardLog)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	tio := getTermios(t, rw.(*os.File))
	checkRaw(t, tio)
	if tio.Cflag&unix.CBAUD != unix.B38400 || tio.Cflag&unix.CSTOPB == 0 {
		t.Errorf("cflag %#x: want B38400 and two stop bits kept", tio.Cflag)
	}
}

func TestSerialErrors(t *testing.T) {
	_, path, _ := openPTY(t)
	for _, tc := range []struct {
		line SerialConfig
		want string
	}{
		{SerialConfig{BaudRate: 9601}, "baud rate 9601 is not one of"},
		{SerialConfig{BaudRate: 460800}, "baud rate 460800"},
		{SerialConfig{BaudRate: -1}, "baud rate -1"},
		{SerialConfig{DataBits: 9}, "data bits 9"},
		{SerialConfig{DataBits: 4}, "data bits 4"},
		{SerialConfig{StopBits: 3}, "stop bits 3"},
		{SerialConfig{Parity: ParityOdd + 1}, "parity"},
	} {
		// Through the client, as the mapper sees it.
		c := NewRTUClient(path, tc.line, Options{Logger: discardLog})
		err := c.Connect(testCtx(t))
		c.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%+v: err %v, want %q naming %s", tc.line, err, tc.want, path)
		}
	}
	// Not a terminal: settings cannot be applied, but with none asked the device is used.
	if _, err := openSerial("/dev/null", SerialConfig{BaudRate: 9600}, discardLog); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("/dev/null with a baud rate: err %v, want ENOTTY", err)
	}
	rw, err := openSerial("/dev/null", SerialConfig{}, discardLog)
	if err != nil {
		t.Errorf("/dev/null without settings: %v", err)
	} else {
		rw.Close()
	}
	if _, err := openSerial("/nonexistent/tty", SerialConfig{}, discardLog); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing device: err %v", err)
	}
}

// An RTU exchange through a pseudo-terminal: the client programs the slave side, the server
// answers on the master side. The register values hold the bytes a cooked terminal would
// eat or rewrite (CR, LF, ^C, XON/XOFF, ^D, DEL), in both directions.
func TestSerialRTUClientServer(t *testing.T) {
	master, path, keeper := openPTY(t)
	setCooked(t, keeper)
	bank, _ := NewBank(DefaultBankSizes)
	srv := NewServer(bank, ServerOptions{UnitID: 7, Logger: discardLog})
	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- srv.ServeRTU(master) })
	defer func() { srv.Close(); wg.Wait() }()

	ctx := testCtx(t)
	line := SerialConfig{BaudRate: 19200, DataBits: 8, Parity: ParityNone, StopBits: 1}
	c := NewRTUClient(path, line, Options{UnitID: 7, Timeout: 2 * time.Second, Retries: -1, Logger: discardLog})
	defer c.Close()
	values := []uint16{0x0d0a, 0x0311, 0x137f, 0x0400, 0x0a0d, 0x1a1c, 0xff00}
	if err := c.WriteMultipleRegisters(ctx, 3, values); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ReadHoldingRegisters(ctx, 3, len(values)); err != nil || !slices.Equal(got, values) {
		t.Fatalf("read %x, %v; want %x", got, err, values)
	}
	if got, err := bank.Registers(HoldingRegisters, 3, len(values)); err != nil || !slices.Equal(got, values) {
		t.Fatalf("bank holds %x, %v; want %x", got, err, values)
	}

	// The tty read honours the client's deadline: a device that does not answer times out.
	other := NewRTUClient(path, line, Options{UnitID: 8, Timeout: 100 * time.Millisecond, Retries: -1, Logger: discardLog})
	defer other.Close()
	start := time.Now()
	if _, err := other.ReadCoils(ctx, 0, 1); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("unanswered request: err %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	// The line is still in step for the first client.
	if err := c.WriteSingleRegister(ctx, 0, 0x0d0d); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-serveErr:
		t.Fatalf("server stopped: %v", err)
	default:
	}
}

func TestParseParity(t *testing.T) {
	for s, want := range map[string]Parity{
		"": ParityUnset, "none": ParityNone, "N": ParityNone, "n": ParityNone, "NONE": ParityNone,
		"even": ParityEven, "E": ParityEven, "Even": ParityEven, "odd": ParityOdd, "o": ParityOdd, "O": ParityOdd,
	} {
		if got, err := ParseParity(s); err != nil || got != want {
			t.Errorf("%q: %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"mark", "space", "M", "S", " none", "1", "nonee"} {
		if _, err := ParseParity(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func FuzzParseParity(f *testing.F) {
	for _, s := range []string{"", "none", "N", "even", "e", "odd", "O", "mark", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseParity(s)
		if err != nil {
			return
		}
		if err := (SerialConfig{Parity: p}).Validate(); err != nil {
			t.Fatalf("%q parsed to %v, which does not validate: %v", s, p, err)
		}
		if p.String() != strings.ToLower(s) && !strings.HasPrefix(p.String(), strings.ToLower(s)) && s != "" {
			t.Fatalf("%q parsed to %v", s, p)
		}
	})
}

// The constructors apply the option defaults once: Retries -1 stays "no retries".
func TestConstructorsKeepOptions(t *testing.T) {
	for _, c := range []*Client{
		NewRTUClient("/dev/null", SerialConfig{}, Options{Retries: -1, Logger: discardLog}),
		NewTCPClient("127.0.0.1:1", Options{Retries: -1, Logger: discardLog}),
	} {
		if c.opts.Retries != 0 || c.opts.Timeout != DefaultTimeout {
			t.Errorf("%v client: retries %d timeout %v, want 0 %v", c.framing, c.opts.Retries, c.opts.Timeout, DefaultTimeout)
		}
	}
}
