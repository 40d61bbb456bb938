//go:build !unix

package modbus

const noctty = 0
