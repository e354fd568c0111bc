"""The appliance's firewall: NUT's port open to the allowed networks only.

NUT's security chapter suggests a UFW profile for port 3493/tcp limited to
the local network; the appliance has no UFW, so provisioning writes the
equivalent nftables ruleset (loaded with ``nft -f`` at boot):

- 3493/tcp (and 22/tcp when SSH is on) from the allowed networks; the
  same ports from anywhere else get a TCP reset, so a refused client learns
  it at once instead of waiting for a timeout;
- replies to the appliance's own connections (NTP, DNS, DHCP), loopback,
  ICMP/ICMPv6 (IPv6 needs neighbour discovery), DHCP and mDNS (5353/udp,
  so Home Assistant finds the appliance);
- everything else is dropped.

With no ``allow`` setting the allowed networks are the local subnet: the
static address's network, or with DHCP the networks the lease gives, which
are only known at run time. The ruleset then keeps an empty set
``local_v4`` that the DHCP client's hook fills (`local_subnet_commands`):

    nft add element inet nutapp local_v4 { 192.168.1.0/24 }

IPv6 link-local (fe80::/10) is always local.
"""

import ipaddress

NUT_PORT = 3493
SSH_PORT = 22
TABLE = "nutapp"


def ruleset(allowed, ssh=False, local_v4=(), local_v6=()):
    """The nftables ruleset text.

    `allowed`: the networks a person listed (ipaddress networks); when
    empty, the local subnet: `local_v4`/`local_v6` networks (a static
    address's network) plus whatever the DHCP hook adds to the sets.
    """
    v4 = [n for n in allowed if n.version == 4]
    v6 = [n for n in allowed if n.version == 6]
    runtime_local = not allowed
    if runtime_local:
        v4 = list(local_v4)
        v6 = [ipaddress.ip_network("fe80::/10")] + list(local_v6)
    ports = [NUT_PORT] + ([SSH_PORT] if ssh else [])
    port_set = "{ %s }" % ", ".join(str(p) for p in ports)

    out = [
        "#!/usr/sbin/nft -f",
        "# nutapp appliance firewall, written by nutapp provision.",
        "# Allowed: %s" % (", ".join(str(n) for n in allowed) if allowed
                           else "the local subnet"),
        "",
        "table inet %s" % TABLE,
        "delete table inet %s" % TABLE,
        "",
        "table inet %s {" % TABLE,
        _set("allowed_v4", "ipv4_addr", v4),
        _set("allowed_v6", "ipv6_addr", v6),
    ]
    if runtime_local:
        out.append(_set("local_v4", "ipv4_addr", []))
        out.append(_set("local_v6", "ipv6_addr", []))
    out += [
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        "\t\tct state established,related accept",
        "\t\tct state invalid drop",
        '\t\tiifname "lo" accept',
        "\t\tmeta l4proto icmp accept",
        "\t\tmeta l4proto ipv6-icmp accept",
        "\t\tudp sport 67 udp dport 68 accept",
        "\t\tudp sport 547 udp dport 546 accept",
        "\t\tudp dport 5353 ip daddr 224.0.0.251 accept",
        "\t\tudp dport 5353 ip6 daddr ff02::fb accept",
        "\t\ttcp dport %s ip saddr @allowed_v4 accept" % port_set,
        "\t\ttcp dport %s ip6 saddr @allowed_v6 accept" % port_set,
    ]
    if runtime_local:
        out += [
            "\t\ttcp dport %s ip saddr @local_v4 accept" % port_set,
            "\t\ttcp dport %s ip6 saddr @local_v6 accept" % port_set,
        ]
    out += [
        "\t\ttcp dport %s reject with tcp reset" % port_set,
        "\t}",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy drop;",
        "\t}",
        "}",
        "",
    ]
    return "\n".join(out)


def _set(name, kind, networks):
    lines = ["\tset %s {" % name, "\t\ttype %s" % kind, "\t\tflags interval"]
    if networks:
        lines.append("\t\telements = { %s }" % ", ".join(str(n) for n in networks))
    lines.append("\t}")
    return "\n".join(lines)


def local_subnet_commands(cidr):
    """The nft command (argv) the DHCP hook runs for a lease's address/prefix.

    >>> local_subnet_commands("192.168.1.37/24")
    ['nft', 'add', 'element', 'inet', 'nutapp', 'local_v4', '{ 192.168.1.0/24 }']
    """
    net = ipaddress.ip_interface(cidr).network
    name = "local_v4" if net.version == 4 else "local_v6"
    return ["nft", "add", "element", "inet", TABLE, name, "{ %s }" % net]
