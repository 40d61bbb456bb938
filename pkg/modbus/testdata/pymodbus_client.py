"""A pymodbus TCP client that exercises a server and prints what it saw as JSON.

Usage: pymodbus_client.py HOST PORT UNIT. Written for pymodbus 3.0 (Debian's
python3-pymodbus). The Go cross-check test prepares the server's tables, runs this script
and checks both its output and the server's tables afterwards.
"""
import json
import sys

from pymodbus.client import ModbusTcpClient


def main():
    host, port, unit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = ModbusTcpClient(host, port=port, timeout=5)
    if not client.connect():
        sys.exit("cannot connect to %s:%d" % (host, port))
    out = {}

    def check(name, rr):
        if rr.isError():
            sys.exit("%s failed: %s" % (name, rr))
        return rr

    out["coils"] = check("read coils", client.read_coils(0, 10, slave=unit)).bits[:10]
    out["discrete"] = check("read discrete", client.read_discrete_inputs(0, 10, slave=unit)).bits[:10]
    out["holding"] = check("read holding", client.read_holding_registers(0, 5, slave=unit)).registers
    out["input"] = check("read input", client.read_input_registers(0, 5, slave=unit)).registers
    check("write coil", client.write_coil(50, True, slave=unit))
    check("write coils", client.write_coils(60, [True, False, True, True], slave=unit))
    check("write register", client.write_register(50, 4321, slave=unit))
    check("write registers", client.write_registers(60, [7, 8, 9], slave=unit))
    out["holding_after"] = check("read back", client.read_holding_registers(50, 1, slave=unit)).registers
    rr = client.read_holding_registers(1020, 10, slave=unit)
    out["exception_code"] = getattr(rr, "exception_code", None) if rr.isError() else None
    client.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
