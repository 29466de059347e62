"""The shipped offline emulator of Antigravity Tools: a server that draws SYNTHETIC pictures.

Users test their agents with it offline, the demo runs against it, and every test of the client does. It
is a product, not a mock: it behaves like the real server where a client can notice (docs/server-api.md)
and can drill every fault the client survives. It imports nothing of the client but the upstream facts.

    app.py        the application: `App.answer(Request) -> Reply`, no socket needed
    server.py     the HTTP edge and the `Emulator` that runs the app in a thread
    rules.py      what the real server does with a request (pure); intake.py and replies.py its parts
    faults.py     the fault table and the plan that hands faults out; tricks.py what they send
    synthetic.py  the pictures, loudly labelled as synthetic
"""

from .app import App
from .faults import CATALOGUE, TRANSIENT
from .intake import Request
from .rules import Reply
from .server import Emulator, EmulatorConfig, RecordedRequest, serve

__all__ = [
    "CATALOGUE",
    "TRANSIENT",
    "App",
    "Emulator",
    "EmulatorConfig",
    "RecordedRequest",
    "Reply",
    "Request",
    "serve",
]
