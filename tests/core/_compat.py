"""Tiny helpers so the core tests run under pytest and under MicroPython."""


def raises(exc, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc as e:
        return e
    raise AssertionError("%s not raised" % exc.__name__)
