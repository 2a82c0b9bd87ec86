#!/usr/bin/env python3
"""A minimal posbridge client: wait for a loyalty card, then sell with it.

Standard library only. It connects to the daemon's Unix socket, subscribes
to `card.read`, waits for one card (swiped, scanned or typed with
`card.enter`), quotes a one-line sale of 1000.00 for that card, commits it
without redeeming points, prints the committed transaction and exits 0.

    python3 docs/example_client.py --socket /run/posbridge/posbridge.sock

Trigger the card read from another shell, for example:

    posbridge call card.enter '{"number": "6035000011112222"}'

Output, one line each: `subscribed`, `card: ...`, `quote: {...}`,
`committed: {...}`. Exit status: 0 on success, 1 on an error reply or a
closed connection, 2 when no card arrives within --timeout seconds.

See docs/protocol.md: one JSON value per line, replies may arrive out of
order and interleaved with event notifications, so replies are matched by
`id` and notifications are set aside while waiting.
"""

import argparse
import json
import socket
import sys
import time
import uuid


class RpcError(Exception):
    """An error reply: code, message and data as the daemon sent them."""

    def __init__(self, error):
        self.code = error.get("code")
        self.data = error.get("data")
        super().__init__(f"{self.code}: {error.get('message')}")


class Connection:
    """One JSON-RPC connection: JSON lines in, JSON lines out."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1
        self.notifications = []  # events read while waiting for a reply

    def read_message(self, deadline):
        """The next JSON value from the daemon; None on timeout.

        Reads raw bytes and splits on b"\\n", so a line that arrives in
        pieces, or several lines in one read, are handled alike. Blank
        lines are skipped; a trailing \\r is tolerated.
        """
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
                line = line.strip()
                if not line:
                    continue
                return json.loads(line.decode("utf-8"))
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self.buf += chunk

    def call(self, method, params=None, timeout=30.0):
        """Sends a request and returns its result; raises RpcError."""
        req_id = self.next_id
        self.next_id += 1
        req = {"jsonrpc": "2.0", "id": req_id, "method": method}
        if params is not None:
            req["params"] = params
        data = json.dumps(req, ensure_ascii=False, separators=(",", ":"))
        self.sock.sendall(data.encode("utf-8") + b"\n")
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read_message(deadline)
            if msg is None:
                raise TimeoutError(f"no reply to {method} within {timeout} s")
            if isinstance(msg, list):  # a batch reply; we send no batches
                continue
            if "id" not in msg:  # a notification: keep it for later
                self.notifications.append(msg)
                continue
            if msg["id"] != req_id:  # a reply to another request
                continue
            if "error" in msg:
                raise RpcError(msg["error"])
            return msg["result"]

    def next_event(self, topic, timeout):
        """The next event of `topic`; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self.notifications:
                msg = self.notifications.pop(0)
            else:
                msg = self.read_message(deadline)
                if msg is None:
                    return None
            if msg.get("method") == "event" and msg["params"].get("topic") == topic:
                return msg["params"]
            # events.lagged or another topic: not what we wait for.


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True, help="the daemon's Unix socket")
    ap.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for a card"
    )
    args = ap.parse_args()

    try:
        conn = Connection(args.socket)
        conn.call("events.subscribe", {"topics": ["card.read"]})
        # Every card.read published from now on reaches us.
        print("subscribed", flush=True)

        card = conn.next_event("card.read", args.timeout)
        if card is None:
            print(f"no card within {args.timeout} s", file=sys.stderr)
            return 2
        print(f"card: {card['card_masked']} from {card['reader']}", flush=True)

        # Amounts are decimal strings, never JSON numbers.
        lines = [
            {
                "sku": "4601",
                "name": "Кофе в зёрнах",
                "category": "grocery",
                "qty": "1",
                "price": "1000.00",
            }
        ]
        quote = conn.call(
            "sale.quote",
            {"card_token": card["card_token"], "lines": lines, "redeem": "0"},
        )
        print("quote: " + json.dumps(quote["quote"], ensure_ascii=False), flush=True)

        # A fresh key per sale; on a lost reply, send the same request with
        # the same key again and the stored result comes back.
        result = conn.call(
            "sale.commit",
            {
                "idempotency_key": str(uuid.uuid4()),
                "card_token": card["card_token"],
                "receipt_id": "example-" + uuid.uuid4().hex[:8],
                "lines": lines,
                "redeem": "0",
            },
        )
        print("committed: " + json.dumps(result, ensure_ascii=False), flush=True)
        return 0
    except RpcError as e:
        print(f"error {e} data={json.dumps(e.data)}", file=sys.stderr)
        return 1
    except (OSError, ConnectionError, TimeoutError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
