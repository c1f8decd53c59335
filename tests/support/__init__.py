"""Test and benchmark support: real emulators and real PostgreSQL clusters on loopback."""
