// Package modbus is a small, dependency-free Modbus implementation: the PDUs of the eight
// common function codes, Modbus TCP (MBAP) and RTU framing, a client with timeouts, retries
// and reconnects, an in-memory server for tests and the simulator, and the value codec the
// Modbus mapper uses to turn registers into typed values (docs/modbus.md).
//
// Everything that arrives from the network or a serial line is bounded and validated: a
// malformed frame is an error, never a panic, and the server answers bad requests with a
// Modbus exception or closes the connection.
package modbus
