"""Provisioning: settings, users and certificates from the SD card's boot
partition, installed power-loss safe (main.py tells the whole story).

Modules, in the order a run uses them:

    main.py         the command line (also --blink, --local-subnet)
    provisioner.py  one run: check, plan, install, tidy the boot folder
    settings.py     nutapp.conf, the one settings file for the common case
    nutconf.py      NUT's own files: checked, or written from nutapp.conf
    tls.py          the server certificate: imported or made
    system.py       host name, network, Wi-Fi, time servers, SSH keys
    firewall.py     the nftables ruleset
    plan.py         everything above, worked out in memory
    install.py      versioned configurations and the `current` switch
    fsops.py        atomic, fsynced file system steps
    problems.py     problems, PROVISIONING-ERRORS.txt, exit codes
    led.py          the exit code on the status LED
    examples/       nutapp.conf and README.txt for the boot partition

What the appliance's start-up is expected to do with it:

1. mount the boot partition read-write (its folder ``nut/`` holds the
   person's files) and the data partition (a journalling file system: the
   atomic switch relies on rename) on /data; /etc/nut in the read-only
   root is a symlink to /data/nut/current;
2. ``nutapp provision --boot /boot/nut --data /data --etc /etc/nut``; on a
   non-zero exit, ``nutapp provision --blink <code> &`` and go on with the
   configuration installed before (if any);
3. apply /etc/nut/system: ``hostname -F hostname``, ``ifup -a -i
   interfaces`` (Wi-Fi through wpa_supplicant.conf), resolv.conf when
   present, ``nutapp timesync`` from ntp.servers, ``nft -f
   nftables.conf``, authorized_keys for the SSH server when present; the
   DHCP client's hook runs ``nutapp provision --local-subnet <ip>/<prefix>``
   when the firewall allows "the local subnet";
4. start the drivers and upsd as group nut (STATEPATH /data/nut/state),
   and ``python3 -m nutapp.mdns --hostname <hostname>`` for discovery.
"""
