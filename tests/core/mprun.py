"""Run the core tests under MicroPython (no pytest there): every test_*
function of the given modules; prints 'N passed, N failed' and exits 1 on
any failure."""

import sys

sys.path.insert(0, sys.argv[1])  # repository root
sys.path.insert(0, sys.argv[2])  # this directory

passed = failed = 0
for modname in sys.argv[3:]:
    mod = __import__(modname)
    for name in sorted(dir(mod)):
        if not name.startswith("test_"):
            continue
        try:
            getattr(mod, name)()
            passed += 1
        except Exception as e:
            failed += 1
            print("FAIL %s.%s: %r" % (modname, name, e))
            sys.print_exception(e)
print("micropython: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
