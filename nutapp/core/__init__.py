"""The pure core: NUT's grammar, protocol and state, free of I/O.

Nothing in this package opens a socket, reads a clock, sleeps or logs, and
everything in it runs under MicroPython as well as CPython, so the same
code can be tested without a network and reused on small boards.
"""
