//go:build !linux

package modbus

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

// openSerial opens the device at path as it is: programming the line is implemented for
// Linux only, so non-zero settings in line are logged as not applied.
func openSerial(path string, line SerialConfig, log *slog.Logger) (io.ReadWriteCloser, error) {
	if err := line.Validate(); err != nil {
		return nil, fmt.Errorf("serial line %s: %w", path, err)
	}
	// O_NOCTTY: a serial line must not become our controlling terminal.
	f, err := os.OpenFile(path, os.O_RDWR|noctty, 0)
	if err != nil {
		return nil, err
	}
	if !line.IsZero() {
		log.Info("modbus RTU line settings are taken from the OS on this platform, configData's are not applied",
			"baudRate", line.BaudRate, "dataBits", line.DataBits, "parity", line.Parity.String(),
			"stopBits", line.StopBits)
	}
	return f, nil
}
