"""How a simulated user answers a prediction (the *model* of the user model).

:func:`respond` is the only place where the true label meets the system's prediction. It reads
the stream's pre-drawn dice, so two policies that make the same prediction at the same interaction
get the same answer, and it updates the user's :class:`UserState` (engagement erodes after wrong
predictions and recovers after right ones, so a bad policy is answered less and less).

The formulas (parameters in :class:`simulators.users.profile.Feedback`)::

    p_explicit(t) = p_explicit * (1 - weekly_decay) ** week * [morning_factor] * engagement(t)
    explicit      = u_explicit < p_explicit(t)
    answer        = label, or (label + noise_offset) % 6 when u_label_noise < label_noise
    confirmation  = explicit and answer == prediction;  correction = explicit and not confirmation
    log rt        = log(rt_median_s) + rt_sigma * (z_rt + implicit_margin * wrong)
    engagement cue= engagement(t) + engagement_noise * (z_engagement - implicit_margin * wrong)
    engagement(t+1) = engagement(t) * (1 - erosion)            if wrong
                    = engagement(t) + recovery * (1 - engagement(t))   if right
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from mer_gym.labels import EMOTIONS
from simulators.users.stream import Stream

NONE = -1
"""``Response.answer`` when no explicit feedback was given."""


@dataclass
class UserState:
    """What changes in a user during a pilot (reset per pilot)."""

    engagement: float = 1.0


@dataclass(frozen=True)
class Response:
    """The user's reaction to the prediction of interaction ``step``.

    Attributes:
        step: the interaction this feedback concerns.
        deliver_step: the interaction at which the explicit part arrives (``step``, or later in
            diary mode); implicit cues are always immediate.
        explicit: whether the user answered explicitly.
        confirmed: explicit and the answer agrees with the prediction.
        corrected: explicit and the answer disagrees (``answer`` then names the user's label).
        answer: the label the user gave (index into EMOTIONS), or :data:`NONE`.
        response_time_s: implicit cue (longer after wrong predictions).
        engagement: implicit cue (lower after wrong predictions).
        p_explicit: the probability of explicit feedback that applied.
    """

    step: int
    deliver_step: int
    explicit: bool
    confirmed: bool
    corrected: bool
    answer: int
    response_time_s: float
    engagement: float
    p_explicit: float


def respond(stream: Stream, step: int, prediction: int, state: UserState) -> Response:
    """The user's feedback on ``prediction`` at interaction ``step``; updates ``state``.

    Raises:
        IndexError: ``step`` outside the stream.
        ValueError: ``prediction`` is not a class index in 0..5.
    """
    if not 0 <= step < len(stream):
        raise IndexError(f"step {step} is outside the stream's {len(stream)} interactions")
    try:
        index = operator.index(prediction)  # int or numpy integer (what argmax returns)
    except TypeError:
        index = -1
    if not 0 <= index < len(EMOTIONS) or isinstance(prediction, bool):
        raise ValueError(f"prediction = {prediction!r}: expected a class index in 0..{len(EMOTIONS) - 1}")
    prediction = index
    fb = stream.profile.feedback
    truth = int(stream.label[step])
    wrong = prediction != truth
    e = state.engagement
    p = fb.p_explicit * (1.0 - fb.weekly_decay) ** int(stream.week[step]) * e
    if stream.hour[step] < fb.morning_until:
        p *= fb.morning_factor
    explicit = bool(stream.u_explicit[step] < p)
    answer = NONE
    if explicit:
        answer = truth
        if stream.u_label_noise[step] < fb.label_noise:
            answer = (truth + int(stream.noise_offset[step])) % len(EMOTIONS)
    confirmed = explicit and answer == prediction
    rt = math.exp(math.log(fb.rt_median_s) + fb.rt_sigma * (float(stream.z_rt[step]) + fb.implicit_margin * wrong))
    cue = e + fb.engagement_noise * (float(stream.z_engagement[step]) - fb.implicit_margin * wrong)
    state.engagement = e * (1.0 - fb.erosion) if wrong else e + fb.recovery * (1.0 - e)
    return Response(
        step=step,
        deliver_step=int(stream.deliver_step[step]),
        explicit=explicit,
        confirmed=confirmed,
        corrected=explicit and not confirmed,
        answer=answer,
        response_time_s=rt,
        engagement=cue,
        p_explicit=p,
    )
