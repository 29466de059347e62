"""The shipped offline emulator of Antigravity Tools: a server that draws SYNTHETIC pictures.

Users test their agents with it offline, the demo runs against it, and every test of the client does. It
is a product, not a mock: it behaves like the real server where a client can notice (docs/server-api.md)
and can drill every fault the client survives. It imports nothing of the client but the upstream facts.

    app.py        the application: `App.answer(Request) -> Reply`, no socket needed
    server.py     the HTTP edge and the `Emulator` that runs the app in a thread
    rules.py      what the real server does with a request (pure); intake.py and replies.py its parts
    catalogue.py  the fault table: one row per fault; tricks.py what the faults send
    capacity.py   how many image requests it works on at once: the rest refused, or queued
    faults.py     fault specs and the plan that hands faults out
    synthetic.py  the pictures, marked as synthetic all over; lettering.py text in any script on them
"""

from .app import App
from .faults import CATALOGUE, TRANSIENT
from .intake import Request
from .replies import Reply
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
