"""Simulated users: profiles, populations and pre-drawn interaction streams (see docs/users.md)."""
