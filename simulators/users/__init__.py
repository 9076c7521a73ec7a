"""Simulated users: who they are, what they feel and when, how the frozen models see them, and how
they answer the system (docs/users.md).

>>> from simulators.users import default_pool, sample_population, draw_stream
>>> pool = default_pool()
>>> users = sample_population("paper-pilot", pool)
>>> [u.schedule.days for u in users]
[14, 14, 14, 14, 14, 14]
>>> stream = draw_stream(users[0], pool, seed=0)
>>> stream.counts["interactions"] == len(stream) <= stream.counts["prompts"] == 14 * 6
True
"""

from simulators.users.feedback import Response, UserState, respond
from simulators.users.pool import PoolError, UserPool, build_pool, default_pool, pool_from_bank
from simulators.users.population import (
    PopulationPreset,
    load_population,
    population_names,
    sample_population,
)
from simulators.users.profile import (
    Context,
    Drift,
    EmotionDynamics,
    Episode,
    Feedback,
    Profile,
    Schedule,
)
from simulators.users.stream import Stream, draw_stream, draw_streams

__all__ = [
    "Context",
    "Drift",
    "EmotionDynamics",
    "Episode",
    "Feedback",
    "PoolError",
    "PopulationPreset",
    "Profile",
    "Response",
    "Schedule",
    "Stream",
    "UserPool",
    "UserState",
    "build_pool",
    "default_pool",
    "draw_stream",
    "draw_streams",
    "load_population",
    "pool_from_bank",
    "population_names",
    "respond",
    "sample_population",
]
