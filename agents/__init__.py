"""Personalization policies (tabular Q-learning of the paper's §5.5 and its baselines).

Empty until the policies issue lands; the package exists so that the layout fixed by the design card
(`agents/`) installs and imports from the start.
"""
