"""Studies: compare personalization policies on simulated multi-week pilots.

Empty until the studies issue lands; the package exists so that the layout fixed by the design card
(`studies/`) installs and imports from the start.
"""
