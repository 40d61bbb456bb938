package modbus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"
)

// baudCodes maps StandardBaudRates to their termios speed codes.
var baudCodes = map[int]uint32{
	1200: unix.B1200, 1800: unix.B1800, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600, 115200: unix.B115200,
	230400: unix.B230400,
}

var sizeCodes = map[int]uint32{5: unix.CS5, 6: unix.CS6, 7: unix.CS7, 8: unix.CS8}

// openSerial opens the tty at path and programs it for RTU: raw mode plus line's settings.
func openSerial(path string, line SerialConfig, log *slog.Logger) (io.ReadWriteCloser, error) {
	if err := line.Validate(); err != nil {
		return nil, fmt.Errorf("serial line %s: %w", path, err)
	}
	// O_NOCTTY: the line must not become our controlling terminal. O_NONBLOCK: open must not
	// wait for carrier detect (CLOCAL is set below), and Go's poller then gives reads the
	// deadlines the client relies on.
	f, err := os.OpenFile(path, os.O_RDWR|noctty|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("serial line %s: %w", path, err)
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = configureSerial(int(fd), line) }); err != nil {
		cerr = err
	}
	if errors.Is(cerr, unix.ENOTTY) && line.IsZero() {
		// Not a terminal (a FIFO, a test device) and nothing to apply: use it as it is.
		log.Debug("modbus serial device is not a terminal, line not programmed")
		return f, nil
	}
	if cerr != nil {
		f.Close()
		return nil, fmt.Errorf("serial line %s: %w", path, cerr)
	}
	log.Debug("modbus serial line configured", "baudRate", line.BaudRate, "dataBits", line.DataBits,
		"parity", line.Parity.String(), "stopBits", line.StopBits)
	return f, nil
}

// rawIflag, rawOflag and rawLflag are cleared for raw mode: no break/parity marking, no
// CR/LF translation, no software flow control, no output processing, no echo, no line
// editing, no signal characters.
const (
	rawIflag = unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR |
		unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY
	rawOflag = unix.OPOST
	rawLflag = unix.ECHO | unix.ECHOE | unix.ECHOK | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
)

// configureSerial applies raw mode and line to the terminal fd, checks that the driver took
// the settings (TCSETS succeeds if it took any) and discards bytes received under the old ones.
func configureSerial(fd int, line SerialConfig) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("get termios: %w", err)
	}
	setTermios(t, line)
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("set termios: %w", err)
	}
	got, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("get termios: %w", err)
	}
	if err := checkTermios(got, t, line); err != nil {
		return err
	}
	if err := unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// setTermios edits t for raw mode and line; line must be valid.
func setTermios(t *unix.Termios, line SerialConfig) {
	t.Iflag &^= rawIflag
	t.Oflag &^= rawOflag
	t.Lflag &^= rawLflag
	// CLOCAL: ignore modem lines; CREAD: enable the receiver; no hardware flow control
	// (RS-485 adapters have no RTS/CTS handshake).
	t.Cflag |= unix.CLOCAL | unix.CREAD
	t.Cflag &^= unix.CRTSCTS
	// Reads return as soon as a byte is there; the client's deadlines bound the wait.
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	if line.BaudRate != 0 {
		// CIBAUD zero: input speed follows output speed. Ispeed/Ospeed are only read by
		// the kernel with BOTHER, which is not used; set them for readers of the struct.
		t.Cflag &^= unix.CBAUD | unix.CIBAUD
		t.Cflag |= baudCodes[line.BaudRate]
		t.Ispeed = uint32(line.BaudRate)
		t.Ospeed = uint32(line.BaudRate)
	}
	if line.DataBits != 0 {
		t.Cflag &^= unix.CSIZE
		t.Cflag |= sizeCodes[line.DataBits]
	}
	switch line.Parity {
	case ParityNone:
		t.Cflag &^= unix.PARENB | unix.PARODD
		t.Iflag &^= unix.INPCK
	case ParityEven:
		t.Cflag = t.Cflag&^unix.PARODD | unix.PARENB
		t.Iflag |= unix.INPCK
	case ParityOdd:
		t.Cflag |= unix.PARENB | unix.PARODD
		t.Iflag |= unix.INPCK
	}
	switch line.StopBits {
	case 1:
		t.Cflag &^= unix.CSTOPB
	case 2:
		t.Cflag |= unix.CSTOPB
	}
}

// checkTermios compares what the driver kept (got) with what was asked (want).
func checkTermios(got, want *unix.Termios, line SerialConfig) error {
	var mismatch []string
	if got.Iflag&rawIflag != 0 || got.Oflag&rawOflag != 0 || got.Lflag&rawLflag != 0 {
		mismatch = append(mismatch, "raw mode")
	}
	if line.BaudRate != 0 && got.Cflag&unix.CBAUD != want.Cflag&unix.CBAUD {
		mismatch = append(mismatch, fmt.Sprintf("baud rate %d", line.BaudRate))
	}
	if line.DataBits != 0 && got.Cflag&unix.CSIZE != want.Cflag&unix.CSIZE {
		mismatch = append(mismatch, fmt.Sprintf("data bits %d", line.DataBits))
	}
	if line.Parity != ParityUnset && got.Cflag&(unix.PARENB|unix.PARODD) != want.Cflag&(unix.PARENB|unix.PARODD) {
		mismatch = append(mismatch, "parity "+line.Parity.String())
	}
	if line.StopBits != 0 && got.Cflag&unix.CSTOPB != want.Cflag&unix.CSTOPB {
		mismatch = append(mismatch, fmt.Sprintf("stop bits %d", line.StopBits))
	}
	if len(mismatch) > 0 {
		return fmt.Errorf("the device did not accept %v", mismatch)
	}
	return nil
}
