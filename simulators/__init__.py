"""Simulators: the generated face + speech corpus (``simulators.corpus``) and, later, simulated users."""
