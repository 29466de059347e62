"""The shipped offline emulator of Antigravity Tools: a server that draws SYNTHETIC pictures.

Users test their agents with it offline, the demo runs against it, and every test of the client does. It
is a product, not a mock: it behaves like the real server where a client can notice (docs/server-api.md)
and can drill every fault the client survives. It imports nothing of the client but the upstream facts.

    server.py     the HTTP edge and the `Emulator` that runs it in a thread
    rules.py      what the real server does with a request (pure)
    faults.py     the fault catalogue and the plan that hands faults out
    synthetic.py  the pictures, loudly labelled as synthetic
"""

from .faults import CATALOGUE, TRANSIENT
from .rules import Reply
from .server import Emulator, EmulatorConfig, RecordedRequest, serve

__all__ = ["CATALOGUE", "TRANSIENT", "Emulator", "EmulatorConfig", "RecordedRequest", "Reply", "serve"]
