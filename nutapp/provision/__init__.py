"""Provisioning: settings, users and certificates from the SD card's boot
partition, installed power-loss safe (see main.py for the whole story)."""
