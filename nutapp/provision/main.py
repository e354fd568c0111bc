"""`nutapp provision`: import the boot folder's settings into the appliance.

    nutapp provision --boot /boot/nut --data /data --etc /etc/nut
    nutapp provision ... --check      only check, change nothing (exit 3 or 5)
    nutapp provision ... --dry-run    say what would change, change nothing
    nutapp provision --blink 3        show exit code 3 on the status LED
    nutapp provision --local-subnet 192.168.1.37/24   (the DHCP hook)

Order of work: read the boot folder and the installed configuration; check
everything and work out the whole next configuration in memory (plan.py);
on any problem write PROVISIONING-ERRORS.txt to the boot folder, change
nothing else and exit 3. Otherwise, when the configuration differs from
the installed one, install it as a new version and switch to it in one
step (install.py); then tidy the boot folder. With nothing new, nothing is
written at all.

Secrets and the boot folder (FAT has no owners or modes, and the card may
be read by any computer):

- passwords in nutapp.conf and upsd.users are replaced, on their line, by
  their scrypt hash (nutapp.passwords): the files stay the person's own,
  editable, and a second run imports the same thing again. A hash is not a
  password, but it can be attacked offline: passwords should be long.
- the Wi-Fi passphrase line becomes a comment; the installed
  wpa_supplicant.conf holds the derived key, and a later run without a
  passphrase keeps it while the network name is the same.
- private keys (upsd.key, upsd.pem) and upsmon.conf (its MONITOR lines
  carry passwords upsmon must send as they are) are removed.
- secrets leave only after the configuration holding them is installed;
  a power cut in between leaves them there, and the next run finishes.

Left for the person: SERVER-CERTIFICATE.pem and its SHA-256 fingerprint
(for clients to pin), IMPORTED.txt (what was imported, and when).

Exit codes (problems.py): 0 done or nothing to do, 2 usage, 3 a problem
in the boot folder, 4 the data partition could not be written, 5 --check
found the installed configuration missing or unsafe.
"""

import argparse
import grp
import subprocess
import sys

from .problems import EXIT_INSTALL, EXIT_OK, EXIT_USAGE


def main(argv=None, prog="nutapp provision", step_hook=None):
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Import settings, users and certificates from the SD card's boot folder."))
    parser.add_argument("--boot", help="the folder on the boot partition (FAT)")
    parser.add_argument("--data", help="where the data partition is mounted")
    parser.add_argument("--etc", help="the NUT configuration folder the services read "
                        "(made a link to <data>/nut/current)")
    parser.add_argument("--group", default="nut", help="group of the NUT services "
                        "(default: nut)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="check the boot folder and the installed files, change nothing")
    mode.add_argument("--dry-run", action="store_true",
                      help="show what would change, change nothing")
    mode.add_argument("--blink", type=int, metavar="CODE",
                      help="blink exit code CODE on the status LED, then exit")
    mode.add_argument("--local-subnet", metavar="ADDRESS/PREFIX",
                      help="for the DHCP client's hook: let the leased address's "
                      "subnet through the firewall (runs nft)")
    parser.add_argument("--led-pin", default="GPIO17",
                        help="the status LED's pin for --blink (default: GPIO17)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="how many times --blink shows the code (default: 3)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    args = parser.parse_args(argv)

    if args.blink is not None:
        from .led import blink_code

        try:
            blink_code(args.blink, pin=args.led_pin, repeat=args.repeat)
        except Exception as e:  # gpiozero's errors: no GPIO, pin busy, no permission
            sys.stderr.write("%s: cannot use the status LED: %s\n" % (prog, e))
            return 1
        return EXIT_OK
    if args.local_subnet is not None:
        return allow_local_subnet(args.local_subnet, prog)
    for name in ("boot", "data", "etc"):
        if not getattr(args, name):
            parser.error("--%s is required" % name)
    try:
        gid = grp.getgrnam(args.group).gr_gid
    except KeyError:
        sys.stderr.write("%s: there is no group %r\n" % (prog, args.group))
        return EXIT_INSTALL
    from .provisioner import Provisioner

    try:
        return Provisioner(args, gid, prog, step_hook).run()
    except OSError as e:
        sys.stderr.write("%s: %s: %s\n" % (prog, e.filename or "data partition", e.strerror))
        return EXIT_INSTALL


def allow_local_subnet(cidr, prog):
    """Add the subnet of a DHCP lease (e.g. 192.168.1.37/24) to the
    firewall's local set; see firewall.py."""
    from .firewall import local_subnet_commands

    try:
        argv = local_subnet_commands(cidr)
    except ValueError:
        sys.stderr.write("%s: %r is not an address/prefix\n" % (prog, cidr))
        return EXIT_USAGE
    try:
        return subprocess.run(argv).returncode
    except OSError as e:
        sys.stderr.write("%s: cannot run nft: %s\n" % (prog, e.strerror))
        return 1
