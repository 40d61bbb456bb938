"""A pymodbus TCP server with known table contents, for the Go cross-check test.

Usage: pymodbus_server.py PORT. Written for pymodbus 3.0 (Debian's python3-pymodbus).
Table contents (addresses 0..99, zero-based): coil i = (i % 3 == 0), discrete input
i = (i % 2 == 0), holding register i = 3*i, input register i = 1000 + i.
"""
import logging
import sys

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.server import StartTcpServer

SIZE = 100


def main():
    port = int(sys.argv[1])
    logging.basicConfig(level=logging.WARNING)
    store = ModbusSlaveContext(
        co=ModbusSequentialDataBlock(0, [i % 3 == 0 for i in range(SIZE)]),
        di=ModbusSequentialDataBlock(0, [i % 2 == 0 for i in range(SIZE)]),
        hr=ModbusSequentialDataBlock(0, [3 * i for i in range(SIZE)]),
        ir=ModbusSequentialDataBlock(0, [1000 + i for i in range(SIZE)]),
        zero_mode=True,
    )
    context = ModbusServerContext(slaves=store, single=True)
    StartTcpServer(context=context, address=("127.0.0.1", port))


if __name__ == "__main__":
    main()
