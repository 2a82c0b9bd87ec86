#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ from the project's
fixtures, docs and protocol examples. Re-run after changing an input
format in drivers/src/fuzzing.rs; files the fuzzer added are kept."""

import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def hexfile(name):
    """Rows of hex bytes from a drivers/tests/fixtures/*.hex file."""
    rows = []
    with open(os.path.join(ROOT, "drivers", "tests", "fixtures", name)) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                rows.append(bytes(int(x, 16) for x in line.split()))
    return rows


T1 = "%B4111111111111111^DOE/JOHN Q.MR^2512101123456789?"
T2 = ";4111111111111111=25121011234567890?"
T3 = ";011234567890123445=724724100000000000030300XXXX040400099010=************************==1=0000000000000000?"

# --- msr: swipe text as serial and wedge readers deliver it
put("msr", "t1t2", T1 + T2)
put("msr", "t1t2-lines", T1 + "\r\n" + T2 + "\r\n")
put("msr", "t2", T2)
put("msr", "t1t2t3", T1 + T2 + T3)
put("msr", "errors", "%E?;E?+E?")
put("msr", "loyalty", "%B6035123412341234^LOYAL/CUSTOMER^^^0042?;6035123412341234=4912101?")
put("msr", "lrc", T1 + "Z" + T2 + "9")

# --- framing: [config byte][read-size byte] stream
put("framing", "cr-aim", b"\x00\x05]E04006381333931\r]Q1https://club.example/c?card=6035&code=1\r\n")
put("framing", "stx-etx", b"\x0b\x07\x02]C06035123412341234\x03\x02abc\x03")
put("framing", "crlf", b"\x02\x03line one\r\nline\rtwo\r\n")
put("framing", "custom-overflow", b"\x14\x01" + b"x" * 40 + b"#!short#!")
put("framing", "none-flush", b"\x25\x02" + b"]d2010460123456789017" + b"\r")

# --- extract: [rules+check byte] scan payload (AIM allowed)
put("extract", "url", b"\x3f]Q1https://club.example/c?card=6035123412345678&code=4711AB&v=2")
put("extract", "semicolon", b"\x3f6035123412345678;4711")
put("extract", "ean13", b"\xbf]E04006381333931")
put("extract", "luhn-regex", b"\x60 4111111111111111=1234 ")
put("extract", "digits", b"\x01777000111222")
put("extract", "query-c", b"\x08x?c=2200123456789&c=1")

# --- keyboard: [decoder byte] events or reports
events = []
with open(os.path.join(ROOT, "drivers", "tests", "fixtures", "wedge_msr_swipe.keys")) as f:
    for line in f:
        line = line.split("#", 1)[0].strip()
        if line:
            code, value = (int(x) for x in line.split(","))
            events.append(code.to_bytes(2, "little") + bytes([value, 3]))
put("keyboard", "wedge-swipe", b"\x00" + b"".join(events))
boot = hexfile("boot_keyboard_scan.hex")
put("keyboard", "boot-scan", b"\x01" + b"".join(bytes([len(r)]) + r for r in boot))
put("keyboard", "boot-scan-id", b"\x02" + b"".join(bytes([len(r) + 1, 1]) + r for r in boot))
pos = hexfile("pos_scanner_qr.hex")
put("keyboard", "pos-qr", b"\x03" + b"".join(bytes([len(r)]) + r for r in pos))
vendor = b"".join(hexfile("vendor_msr_report.hex"))
put("keyboard", "vendor-msr", b"\x04" + len(vendor).to_bytes(2, "little") + vendor)

# --- Shtrih-M: frames STX LEN body LRC, LRC = XOR of LEN and body
STX, ENQ, ACK, NAK = 0x02, 0x05, 0x06, 0x15


def frame(body):
    lrc = len(body)
    for b in body:
        lrc ^= b
    return bytes([STX, len(body)]) + bytes(body) + bytes([lrc])


short = [0x10, 0x00, 0x1E] + [0] * 13
full = [0x11, 0x00, 0x1E] + list(range(45))
fn_status = [0xFF, 0x01, 0x00] + [0] * 30
fn_doc = [0xFF, 0x0A, 0x00] + [0] * 20
shift = [0xFF, 0x40, 0x00, 1, 2, 0, 3, 0]
close = [0xFF, 0x45, 0x00] + [0] * 14
xrep = [0x40, 0x00, 0x1E]
put("shtrih_frame", "answers", b"\x05" + frame(short) + bytes([ACK, NAK, ENQ]) + frame(full))
put("shtrih_frame", "noise", b"\x00\xff\x02\x00" + frame([0xFF]) + b"\x02\x05\x10" + frame(fn_status))
bad = bytearray(frame(short))
bad[-1] ^= 0x55
put("shtrih_frame", "bad-lrc", b"\x03" + bytes(bad) + frame(close))

# shtrih_link: [command+recover byte][read-size byte] device bytes
put("shtrih_link", "short", b"\x00\x07" + bytes([NAK, ACK]) + frame(short))
put("shtrih_link", "full", b"\x01\x40" + bytes([NAK, ACK]) + frame(full))
put("shtrih_link", "fn-status", b"\x02\x03" + bytes([NAK, ACK]) + frame(fn_status))
put("shtrih_link", "fn-doc", b"\x03\x3f" + bytes([NAK, ACK]) + frame(fn_doc))
put("shtrih_link", "shift", b"\x04\x01" + bytes([NAK, ACK]) + frame(shift))
put("shtrih_link", "close", b"\x05\x10" + bytes([NAK, ACK]) + frame(close))
put("shtrih_link", "pending-then-xreport",
    b"\x86\x20" + bytes([ACK]) + frame(short) + bytes([NAK, NAK, ACK]) + frame(xrep))
put("shtrih_link", "retry-bad-lrc",
    b"\x00\x08" + bytes([NAK, NAK, ACK]) + bytes(bad) + bytes([ACK]) + frame(short))

# --- escpos_sim: [write-size byte] host bytes
ESC, GS, DLE, EOT = b"\x1b", b"\x1d", b"\x10", b"\x04"
receipt = (
    ESC + b"@" + ESC + b"t\x11" + ESC + b"a\x01" + ESC + b"E\x01" + "ЧЕК № 42\n".encode("cp866")
    + ESC + b"E\x00" + ESC + b"a\x00" + b"Coffee        2 x 150.00\n" + GS + b"!\x11" + b"TOTAL 300.00\n"
    + GS + b"!\x00" + GS + b"h\x50" + GS + b"w\x02" + GS + b"k\x49\x0c{B6035123412" + b"\n"
    + GS + b"(k\x04\x001A2\x00" + GS + b"(k\x03\x001C\x04" + GS + b"(k\x03\x001E1"
    + GS + b"(k\x0d\x001P0https://x.io" + GS + b"(k\x03\x001Q0"
    + GS + b"v0\x00\x02\x00\x04\x00" + b"\xf0\x0f\xaa\x55\x00\xff\x81\x18"
    + ESC + b"d\x03" + GS + b"V\x42\x00" + ESC + b"p\x00\x19\xfa" + DLE + EOT + b"\x01" + DLE + EOT + b"\x04"
)
put("escpos_sim", "receipt", b"\x0f" + receipt)
put("escpos_sim", "star-and-cp1251",
    b"\x3f" + ESC + b"@" + ESC + b"t\x2e" + "Сумма\n".encode("cp1251") + ESC + GS + b"t\x01"
    + ESC + b"*\x21\x02\x00" + b"\xff" * 6 + b"\n" + GS + b"L\x10\x00" + GS + b"W\x00\x02" + b"x\n")

# --- rpc_line: requests from docs/protocol.md, plus edge cases
proto = open(os.path.join(ROOT, "docs", "protocol.md"), encoding="utf-8").read()
n = 0
seen = set()
for line in proto.splitlines():
    line = line.strip().strip("`")
    for m in re.finditer(r'\[?\{"jsonrpc":"2\.0".*', line):
        text = m.group(0)
        try:
            v = json.loads(text)
        except ValueError:
            continue
        items = v if isinstance(v, list) else [v]
        if any(i.get("method") in ("event", "events.lagged") for i in items if isinstance(i, dict)):
            continue
        if "id" not in text or text in seen:
            continue
        seen.add(text)
        n += 1
        put("rpc_line", "doc-%02d" % n, text)
put("rpc_line", "notification", '{"jsonrpc":"2.0","method":"system.ping"}')
put("rpc_line", "batch", '[{"jsonrpc":"2.0","id":1,"method":"system.ping"},{"jsonrpc":"2.0","id":2,"method":"nope"},5]')
put("rpc_line", "empty-batch", "[]")
put("rpc_line", "broken", '{"jsonrpc":"2.0","id":1,"method":')
put("rpc_line", "card-enter", '{"jsonrpc":"2.0","id":1,"method":"card.enter","params":{"number":"4111111111111111","secret":"1234"}}\r')
put("rpc_line", "subscribe", '{"jsonrpc":"2.0","id":1,"method":"events.subscribe","params":{"topics":["card.read"]}}')

# --- config: the shipped examples and small variants
for name in sorted(os.listdir(os.path.join(ROOT, "examples"))):
    if name.endswith(".toml"):
        with open(os.path.join(ROOT, "examples", name), "rb") as f:
            put("config", name, f.read())
put("config", "empty", "")
put("config", "reader",
    '[[reader]]\nname = "scanner"\ntype = "scanner"\npath = "/dev/ttyACM0"\n'
    '[reader.framing]\nsuffix = "cr"\n[reader.extract]\nscan = ["digits"]\n')
put("config", "bad-key", "[daemon]\nsocket_mode = \"0660\"\nnope = 1\n")
# --- gs1: labels as scanners send them (AIM prefix, GS separators)
GS = "\x1d"
put("gs1", "marking-dm", "]d2" + "0104601234567892215ABCDEfghij" + GS + "91EE06" + GS
    + "92abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU=")
put("gs1", "gs1-128", "]C1" + "0104601234567892" + "17261231" + "10LOT42")
put("gs1", "short-crypto", "]d2" + GS + "0104601234567892" + "21abcdef" + GS + "93Ab1=")
put("gs1", "bad-check", "]d2" + "0104601234567893")
put("gs1", "gs1-qr", "]Q3" + "0104601234567892" + "3103000750")
put("gs1", "sscc", "00" + "346012345678901236")

# --- recording: key-event recordings (DELAY_US TYPE CODE VALUE a line)
put("recording", "ean13", "# delay type code value\n0 4 4 458792\n0 1 2 1\n0 0 0 0\n8000 1 2 0\n0 0 0 0\n")
put("recording", "bad-line", "0 1 2\n")
print("seeds written")
