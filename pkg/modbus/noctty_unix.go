//go:build unix

package modbus

import "syscall"

const noctty = syscall.O_NOCTTY
