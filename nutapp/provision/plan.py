"""From the boot folder to the wanted configuration, without writing.

`make_plan` reads what the person left in the boot folder, and what is
installed now, and works out the whole next configuration in memory: every
file with its bytes and access class, what to rewrite or remove in the
boot folder (secrets), and what to tell the person. It checks everything
first; if anything is wrong the plan carries the problems and nothing else
is done.

Where each installed file comes from, first match wins:

- NUT's own file in the boot folder (ups.conf, upsd.conf, upsd.users,
  upsmon.conf);
- the matching sections of nutapp.conf ([ups NAME], [user NAME]);
- the installed configuration (a file the person imported earlier and the
  boot folder no longer has, e.g. upsmon.conf or a private key);
- defaults: one UPS ``ups`` with driver auto, no users, DHCP, a made
  certificate.

The plan is the same every time for the same inputs: a plain password that
the installed hash already matches keeps that hash, a Wi-Fi passphrase
gives the same key, a made certificate is kept while its names are right.
That is what makes a second run with nothing new change nothing.
"""

import ipaddress
import json
import os

from nutapp.core.parseconf import parse_text
from nutapp.core.errors import ParseError
from nutapp.passwords import hash_password, is_hashed, verify_password

from . import firewall, nutconf, system, tls
from .problems import Problems
from .settings import FILENAME as SETTINGS, Settings, read_settings

# Inputs in the boot folder.
CERT_FILE = "upsd.crt"
KEY_FILE = "upsd.key"
COMBINED_FILE = "upsd.pem"
CLIENT_CA_FILE = "client-ca.pem"
SSH_KEYS_FILE = "authorized_keys"
INPUTS = (SETTINGS,) + nutconf.NUT_FILES + (
    CERT_FILE, KEY_FILE, COMBINED_FILE, CLIENT_CA_FILE, SSH_KEYS_FILE)

# Outputs in the boot folder (never read as inputs).
ERRORS_FILE = "PROVISIONING-ERRORS.txt"
IMPORTED_FILE = "IMPORTED.txt"
PUBLIC_CERT_FILE = "SERVER-CERTIFICATE.pem"
FINGERPRINT_FILE = "SERVER-CERTIFICATE-SHA256.txt"

# Access classes of installed files: (owner group, mode). "nut" files are
# read by the NUT services; "root" files only by the init.
NUT, ROOT = "nut", "root"
FILE_MODES = {NUT: 0o640, ROOT: 0o600}
DIR_MODES = {NUT: 0o750, ROOT: 0o700}
SYSTEM_DIR = "system"
MANIFEST = "provision.json"

MAX_INPUT = 1024 * 1024  # a settings file or certificate is never this big


class Plan:
    def __init__(self):
        self.problems = Problems()
        self.files = {}  # relative path -> (bytes, NUT or ROOT)
        self.boot_writes = {}  # boot file name -> bytes, or None to remove it
        self.boot_outputs = {}  # public certificate and fingerprint
        self.notes = []  # lines for IMPORTED.txt
        self.cert = None
        self.cert_source = None
        self.upsd_conf_base = None
        self.ethernet_manifest = None
        self.allow = []

    def add(self, path, data, access=NUT):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.files[path] = (data, access)


def read_boot(boot, problems):
    """The input files present in the boot folder: name -> bytes."""
    found = {}
    try:
        names = os.listdir(boot)
    except OSError as e:
        problems.add(boot, None, "cannot read the boot folder (%s)" % e.strerror,
                     "check that the SD card's boot partition is mounted")
        return found
    lower = dict((n.lower(), n) for n in names)
    for name in INPUTS:
        real = lower.get(name.lower())  # FAT: names are case-insensitive
        if real is None:
            continue
        path = os.path.join(boot, real)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_INPUT + 1)
        except OSError as e:
            problems.add(real, None, "cannot read this file (%s)" % e.strerror,
                         "copy the file onto the card again")
            continue
        if len(data) > MAX_INPUT:
            problems.add(real, None, "this file is larger than 1 MiB", "is it the right file?")
            continue
        found[name] = data
    return found


def read_installed(current):
    """The installed configuration: relative path -> bytes ({} if none)."""
    files = {}
    if not current or not os.path.isdir(current):
        return files
    for root, _, names in os.walk(current):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, current)] = f.read()
    return files


def make_plan(boot_files, installed, etc, statepath):
    """Work out the next configuration. `etc` and `statepath` are the
    paths the services see, written into the config files."""
    plan = Plan()
    problems = plan.problems
    manifest = _json(installed.get(MANIFEST))
    texts = {}
    for name, data in boot_files.items():
        if name.endswith((".crt", ".key", ".pem")):
            continue
        try:
            texts[name] = data.decode("utf-8-sig").replace("\r\n", "\n")
        except UnicodeDecodeError:
            problems.add(name, None, "this file is not plain text (UTF-8)",
                         "save it as plain text, e.g. with Notepad")

    settings = Settings()
    if SETTINGS in texts:
        settings = read_settings(texts[SETTINGS], problems)
        plan.notes.append("read %s" % SETTINGS)

    hostname = settings.hostname or manifest.get("hostname") or system.DEFAULT_HOSTNAME
    static = _static_addresses(settings, installed, manifest)

    _plan_ups(plan, settings, texts, installed, statepath)
    users_text = _plan_users(plan, settings, texts, installed)
    _plan_upsmon(plan, texts, installed)
    _plan_tls(plan, boot_files, installed, manifest, hostname, static)
    _plan_upsd_conf(plan, texts, installed, manifest, etc, statepath)
    _plan_system(plan, settings, texts, installed, manifest, etc, hostname)

    if problems:
        return plan

    manifest_out = {
        "format": 1,
        "hostname": hostname,
        "static_addresses": [str(a) for a in static],
        "certificate": plan.cert_source,
        "upsd_conf_base": plan.upsd_conf_base,
        "ethernet": plan.ethernet_manifest,
        "allow": [str(n) for n in plan.allow],
    }
    plan.add(MANIFEST, json.dumps(manifest_out, indent=1, sort_keys=True) + "\n")
    _plan_boot_rewrites(plan, settings, texts, users_text)
    return plan


def _json(data):
    if not data:
        return {}
    try:
        value = json.loads(data.decode("utf-8"))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _static_addresses(settings, installed, manifest):
    eth = settings.ethernet
    if eth is not None:
        return [eth["address"].ip] if eth["mode"] == "static" and eth["address"] else []
    return [ipaddress.ip_address(a) for a in manifest.get("static_addresses", [])]


# --- NUT files ------------------------------------------------------------

def _plan_ups(plan, settings, texts, installed, statepath):
    problems = plan.problems
    if "ups.conf" in texts:
        if settings.upses:
            problems.add(SETTINGS, settings.upses[0][2],
                         "UPSes are set both here and in ups.conf",
                         "keep one: delete the [ups ...] sections or the ups.conf file")
        nutconf.check_ups_conf(texts["ups.conf"], problems)
        plan.add("ups.conf", texts["ups.conf"])
        plan.notes.append("read ups.conf")
    elif settings.upses:
        nutconf.check_settings_upses(settings, problems, SETTINGS)
        plan.add("ups.conf", nutconf.render_ups_conf(settings, statepath))
    elif "ups.conf" in installed:
        plan.files["ups.conf"] = (installed["ups.conf"], NUT)
    else:
        default = Settings()
        default.upses = [("ups", [("driver", "auto")], None)]
        plan.add("ups.conf", nutconf.render_ups_conf(default, statepath))


def _plan_users(plan, settings, texts, installed):
    """upsd.users; returns the boot upsd.users text with hashes, if any."""
    problems = plan.problems
    old = _installed_passwords(installed.get("upsd.users"))
    if "upsd.users" in texts:
        if settings.users:
            problems.add(SETTINGS, settings.users[0]["lineno"],
                         "users are set both here and in upsd.users",
                         "keep one: delete the [user ...] sections or the upsd.users file")
        text = texts["upsd.users"]
        users = nutconf.check_upsd_users(text, problems)
        if problems:
            return None
        hashes = {}
        for name, _, password, line in users:
            if password and not is_hashed(password):
                hashes[line] = _hash_again(name, password, old)
        hashed_text = nutconf.hash_users_text(text, hashes) if hashes else text
        installed_text = hashed_text
        if hashed_text is None:  # an odd layout: install a hashed copy of our own
            installed_text = _rehash_users(text, hashes)
        plan.add("upsd.users", installed_text)
        plan.notes.append("read upsd.users (%d users)" % len(users))
        return hashed_text if hashes else text
    if settings.users:
        rows = []
        for user in settings.users:
            password = user["password"]
            if password and not is_hashed(password):
                password = _hash_again(user["name"], password, old)
                user["hashed"] = password
            rows.append((user["name"], password, user["role"]))
        plan.add("upsd.users", nutconf.render_upsd_users(rows))
    elif "upsd.users" in installed:
        plan.files["upsd.users"] = (installed["upsd.users"], NUT)
    else:
        plan.add("upsd.users", nutconf.render_upsd_users([]))
    return None


def _hash_again(name, password, old):
    """The installed hash when it already matches `password`, else a new one."""
    stored = old.get(name)
    if stored and is_hashed(stored) and verify_password(stored, password):
        return stored
    return hash_password(password)


def _installed_passwords(data):
    passwords = {}
    if not data:
        return passwords
    try:
        lines = parse_text(data.decode("utf-8"))
    except (ParseError, UnicodeDecodeError):
        return passwords
    user = None
    for _, words in lines:
        if len(words) == 1 and words[0].startswith("[") and words[0].endswith("]"):
            user = words[0][1:-1]
        elif user and words[0].lower() == "password" and len(words) >= 2:
            passwords.setdefault(user, words[-1])
    return passwords


def _rehash_users(text, hashes):
    lines = text.split("\n")
    for lineno, hashed in hashes.items():
        lines[lineno - 1] = '\tpassword = "%s"' % hashed
    return "\n".join(lines)


def _plan_upsmon(plan, texts, installed):
    if "upsmon.conf" in texts:
        nutconf.check_upsmon_conf(texts["upsmon.conf"], plan.problems)
        plan.add("upsmon.conf", texts["upsmon.conf"])
        # MONITOR lines carry passwords upsmon must send as they are.
        plan.boot_writes["upsmon.conf"] = None
        plan.notes.append("imported upsmon.conf and removed it from this folder "
                          "(it holds passwords)")
    elif "upsmon.conf" in installed:
        plan.files["upsmon.conf"] = (installed["upsmon.conf"], NUT)


def _plan_upsd_conf(plan, texts, installed, manifest, etc, statepath):
    if "upsd.conf" in texts:
        base = texts["upsd.conf"]
        nutconf.check_upsd_conf(base, plan.problems)
        plan.notes.append("read upsd.conf")
    else:
        base = manifest.get("upsd_conf_base")
    plan.upsd_conf_base = base
    certfile = os.path.join(etc, "upsd.pem")
    client_ca = os.path.join(etc, "client-ca.pem") if "client-ca.pem" in plan.files else None
    text = nutconf.render_upsd_conf(base, certfile, client_ca)
    if base is None:
        text += "STATEPATH %s\n" % statepath
    plan.add("upsd.conf", text)


# --- TLS ------------------------------------------------------------------

def _plan_tls(plan, boot_files, installed, manifest, hostname, static):
    problems = plan.problems
    cert_pem, key_pem, cert_name, key_name = None, None, CERT_FILE, KEY_FILE
    if COMBINED_FILE in boot_files:
        if CERT_FILE in boot_files or KEY_FILE in boot_files:
            problems.add(COMBINED_FILE, None,
                         "upsd.pem is given together with upsd.crt/upsd.key", "give either upsd.pem (certificate and key in one file) or "
                         "upsd.crt and upsd.key")
            return
        cert_pem, key_pem = tls.split_pem(boot_files[COMBINED_FILE])
        cert_name = key_name = COMBINED_FILE
        if not key_pem:
            key_pem = None
    else:
        cert_pem = boot_files.get(CERT_FILE)
        key_pem = boot_files.get(KEY_FILE)

    old_cert, old_key = _installed_tls(installed.get("upsd.pem"))
    key = cert = None
    if key_pem is not None:
        try:
            key = tls.load_private_key(key_pem)
        except tls.TlsProblem as e:
            problems.add(key_name, None, "the private key cannot be used: %s" % e,
                         "give the unencrypted PEM key that belongs to the certificate")
            return
    if cert_pem is not None:
        try:
            chain = tls.load_certificates(cert_pem)
        except tls.TlsProblem as e:
            problems.add(cert_name, None, "the certificate cannot be used: %s" % e,
                         "give the server certificate in PEM format")
            return
        cert = chain[0]
        try:
            tls.check_key_type_public(cert)
        except tls.TlsProblem as e:
            problems.add(cert_name, None, "the certificate cannot be used: %s" % e,
                         "make an ECDSA P-256 or RSA-2048 certificate")
            return
        if key is None:
            key = old_key
            if key is None or not tls.key_matches(cert, key):
                problems.add(cert_name, None, "there is no private key for this certificate",
                             "put its key next to it as %s" % KEY_FILE)
                return
        elif not tls.key_matches(cert, key):
            problems.add(key_name, None, "the private key does not belong to the certificate "
                         "in %s" % cert_name,
                         "give the key that was made together with this certificate")
            return
        pem = b"".join(tls.cert_pem(c) for c in chain) + tls.key_pem(key)
        plan.cert_source = "imported"
        if old_cert is None or pem != installed.get("upsd.pem"):
            plan.notes.append("imported the server certificate from %s" % cert_name)
    elif key is not None:
        problems.add(key_name, None, "a private key without its certificate",
                     "put the certificate next to it as %s" % CERT_FILE)
        return
    elif old_cert is not None and manifest.get("certificate") == "imported":
        cert, key = old_cert, old_key
        pem = installed["upsd.pem"]
        plan.cert_source = "imported"
    else:
        plan.cert_source = "generated"
        wanted = tls.wanted_names(hostname, static)
        if old_cert is not None and tls.subject_names(old_cert) == wanted:
            cert, key, pem = old_cert, old_key, installed["upsd.pem"]
        else:
            key = old_key or tls.make_key()
            cert = tls.make_certificate(key, hostname, static)
            pem = tls.cert_pem(cert) + tls.key_pem(key)
            plan.notes.append("made a new server certificate for %s"
                              % ", ".join(sorted(wanted)))
    plan.add("upsd.pem", pem)
    plan.cert = cert
    if key_pem is not None:
        plan.boot_writes[key_name] = None
        plan.notes.append("removed the private key (%s) from this folder" % key_name)
        if key_name == COMBINED_FILE:
            plan.boot_writes[CERT_FILE] = tls.cert_pem(cert)
    plan.boot_outputs[PUBLIC_CERT_FILE] = tls.cert_pem(cert)
    plan.boot_outputs[FINGERPRINT_FILE] = (
        "SHA-256 fingerprint of the appliance's server certificate\r\n"
        "(compare it with what your NUT client shows):\r\n\r\n%s\r\n"
        % tls.fingerprint(cert)).encode("ascii")

    if CLIENT_CA_FILE in boot_files:
        try:
            cas = tls.load_certificates(boot_files[CLIENT_CA_FILE])
        except tls.TlsProblem as e:
            problems.add(CLIENT_CA_FILE, None, "the client CA cannot be used: %s" % e,
                         "give the CA certificate(s) in PEM format")
            return
        plan.add("client-ca.pem", b"".join(tls.cert_pem(c) for c in cas))
    elif "client-ca.pem" in installed:
        plan.files["client-ca.pem"] = (installed["client-ca.pem"], NUT)


def _installed_tls(pem):
    if not pem:
        return None, None
    certs, key = tls.split_pem(pem)
    try:
        return tls.load_certificates(certs)[0], tls.load_private_key(key)
    except (tls.TlsProblem, TypeError):
        return None, None


# --- the system -------------------------------------------------------------

def _plan_system(plan, settings, texts, installed, manifest, etc, hostname):
    problems = plan.problems
    old = lambda name: installed.get(os.path.join(SYSTEM_DIR, name))  # noqa: E731

    plan.add(os.path.join(SYSTEM_DIR, "hostname"), system.render_hostname(hostname), ROOT)

    ethernet = settings.ethernet
    if ethernet is None:
        saved = manifest.get("ethernet")
        ethernet = _ethernet_from_manifest(saved) if saved else {"mode": "dhcp"}
    plan.ethernet_manifest = _ethernet_to_manifest(ethernet)

    wifi = settings.wifi
    wpa = None
    if wifi:
        if wifi["psk"] is not None:
            key = system.wpa_key(wifi["ssid"], wifi["psk"])
        else:
            previous = system.installed_wpa((old("wpa_supplicant.conf") or b"").decode())
            key = previous[1] if previous and previous[0] == wifi["ssid"] else None
            if key is None:
                problems.add(SETTINGS, settings.lines.get(("wifi", "ssid")),
                             "Wi-Fi %r has no password (psk)" % wifi["ssid"],
                             "add psk = <your Wi-Fi password> under [wifi]")
        if key:
            wpa = system.render_wpa(wifi, key)
    elif settings.wifi is None and old("wpa_supplicant.conf"):
        wpa = old("wpa_supplicant.conf")  # no [wifi] section: keep it
    if wpa:
        plan.add(os.path.join(SYSTEM_DIR, "wpa_supplicant.conf"), wpa, ROOT)
    wpa_path = os.path.join(etc, SYSTEM_DIR, "wpa_supplicant.conf")
    plan.add(os.path.join(SYSTEM_DIR, "interfaces"),
             system.render_interfaces(ethernet, bool(wpa), wpa_path), ROOT)
    resolv = system.render_resolv(ethernet)
    if resolv:
        plan.add(os.path.join(SYSTEM_DIR, "resolv.conf"), resolv, ROOT)

    servers = settings.time_servers
    if not servers:
        saved = old("ntp.servers")
        servers = saved.decode().split() if saved else system.DEFAULT_TIME_SERVERS
    plan.add(os.path.join(SYSTEM_DIR, "ntp.servers"), system.render_ntp(servers), ROOT)

    keys = None
    if SSH_KEYS_FILE in texts:
        keys = system.check_authorized_keys(texts[SSH_KEYS_FILE], problems)
        if not keys and not problems:
            problems.add(SSH_KEYS_FILE, None, "there is no SSH public key in this file",
                         "paste your id_ed25519.pub line, or delete the file")
    elif old(SSH_KEYS_FILE):
        keys = old(SSH_KEYS_FILE).decode()
    ssh = settings.ssh if settings.ssh is not None else bool(keys)
    if ssh and not keys:
        problems.add(SETTINGS, settings.lines.get(("system", "ssh")),
                     "ssh = yes but there is no authorized_keys file",
                     "put your SSH public key in a file called authorized_keys next "
                     "to nutapp.conf (password logins are not offered)")
    if keys and ssh:
        plan.add(os.path.join(SYSTEM_DIR, SSH_KEYS_FILE), keys, ROOT)

    allowed = settings.allow
    if allowed is None:  # not set: keep what is installed (default: local subnet)
        allowed = [ipaddress.ip_network(n) for n in manifest.get("allow", [])]
    plan.allow = allowed
    local = []
    if ethernet.get("mode") == "static" and ethernet.get("address") is not None:
        local = [ethernet["address"].network]
    plan.add(os.path.join(SYSTEM_DIR, "nftables.conf"), firewall.ruleset(
        allowed, ssh=ssh, local_v4=[n for n in local if n.version == 4],
        local_v6=[n for n in local if n.version == 6]), ROOT)


def _ethernet_to_manifest(eth):
    return {"mode": eth.get("mode", "dhcp"),
            "address": str(eth["address"]) if eth.get("address") else None,
            "gateway": str(eth["gateway"]) if eth.get("gateway") else None,
            "dns": [str(d) for d in eth.get("dns", [])]}


def _ethernet_from_manifest(saved):
    return {"mode": saved.get("mode", "dhcp"),
            "address": ipaddress.ip_interface(saved["address"]) if saved.get("address")
            else None,
            "gateway": ipaddress.ip_address(saved["gateway"]) if saved.get("gateway")
            else None,
            "dns": [ipaddress.ip_address(d) for d in saved.get("dns", [])]}


# --- the boot folder ----------------------------------------------------------

def _plan_boot_rewrites(plan, settings, texts, users_text):
    """Secrets do not stay on FAT: passwords become their hashes, the Wi-Fi
    passphrase and private keys leave the boot folder."""
    if users_text is not None and users_text != texts.get("upsd.users"):
        plan.boot_writes["upsd.users"] = users_text.replace("\n", "\r\n").encode()
        plan.notes.append("replaced the passwords in upsd.users by their hashes")
    elif users_text is None and "upsd.users" in texts and "upsd.users" not in plan.boot_writes:
        if any(not is_hashed(p) for _, _, p, _ in _users_or_empty(texts["upsd.users"])):
            plan.boot_writes["upsd.users"] = None
            plan.notes.append("removed upsd.users from this folder (it held passwords)")
    if SETTINGS not in texts:
        return
    lines = texts[SETTINGS].split("\n")
    changed = []
    for user in settings.users:
        if user.get("hashed") and user["password_line"]:
            lines[user["password_line"] - 1] = "password = %s" % user["hashed"]
            changed.append(user["name"])
    psk_line = settings.lines.get(("wifi", "psk"))
    if settings.wifi and settings.wifi.get("psk") is not None and psk_line:
        lines[psk_line - 1] = ("# psk: imported; write a new psk = ... line here to "
                               "change the Wi-Fi password")
        changed.append("Wi-Fi password")
    if changed:
        plan.boot_writes[SETTINGS] = "\r\n".join(
            line.rstrip("\r") for line in lines).encode("utf-8")
        plan.notes.append("removed from nutapp.conf: the password%s of %s"
                          % ("s" if len(changed) > 1 else "", ", ".join(changed)))


def _users_or_empty(text):
    return nutconf.check_upsd_users(text, Problems())
