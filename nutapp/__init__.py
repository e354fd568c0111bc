"""nutapp: a compact, secure implementation of Network UPS Tools.

`nutapp.core` is the pure protocol and state code (no sockets, clocks or
logging; it also runs under MicroPython). Everything else is an adapter
around it: `nutapp.server` (upsd), `nutapp.drivers`, `nutapp.clients`,
`nutapp.upsmon`.
"""

__version__ = "0.1.0"

# The NUT release whose protocol and behaviour nutapp follows.
NUT_COMPAT_VERSION = "2.8.0"
