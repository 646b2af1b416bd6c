"""A deliberately misbehaving process plugin for the tests: `python rogue.py MODE`.

It speaks the protocol by hand (no plughost imports) so it can break it on purpose.
"""

import json
import os
import signal
import sys
import time

MODE = sys.argv[1]


def send(msg: dict) -> None:
    body = json.dumps(msg).encode()
    os.write(1, b"Content-Length: %d\r\n\r\n" % len(body) + body)


def hello(**over) -> None:
    params = {
        "protocol": int(os.environ["PLUGHOST_PROTOCOL"]),
        "app_protocol": int(os.environ["PLUGHOST_APP_PROTOCOL"]),
        "plugin_id": os.environ["PLUGHOST_PLUGIN_ID"],
        "token": os.environ["PLUGHOST_TOKEN"],
        "pid": os.getpid(),
        "implementation": "rogue",
    }
    params.update(over)
    send({"jsonrpc": "2.0", "method": "$/hello", "params": params})


def read_requests():
    buf = b""
    while True:
        data = os.read(0, 65536)
        if not data:
            return
        buf += data
        while b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            n = int(head.split(b":")[1])
            if len(rest) < n:
                break
            yield json.loads(rest[:n])
            buf = rest[n:]


if MODE == "future-protocol":
    hello(protocol=99)
    time.sleep(5)
elif MODE == "silent":
    time.sleep(30)
elif MODE == "print-first":
    os.write(1, b"Hello, I am a plugin and I print to stdout\n" * 50)
    time.sleep(5)
else:
    if MODE == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    hello()
    for msg in read_requests():
        if "id" not in msg or "method" not in msg:
            continue
        if msg["method"] == "plugin.activate":
            send(
                {
                    "jsonrpc": "2.0",
                    "id": msg["id"],
                    "result": {
                        "exports": [
                            {"kind": "command", "name": "rogue.run", "target": "run", "options": {}}
                        ]
                    },
                }
            )
        elif msg["method"] == "plugin.call":
            if MODE == "oversized":
                os.write(1, b"Content-Length: 999999999\r\n\r\n")
            elif MODE == "bad-json":
                os.write(1, b"Content-Length: 9\r\n\r\n{not json")
            elif MODE in ("stubborn", "hang"):
                while True:
                    pass
            elif MODE == "many":
                send({"jsonrpc": "2.0", "id": msg["id"], "result": msg["params"]["args"]})
        else:
            send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
