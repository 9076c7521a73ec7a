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

:func:`respond_batch` is the same model for N users at once (one interaction each, numpy arrays):
it gives the numbers :func:`respond` gives, bit for bit: the same formulas in the same order, in
float64. One caveat: numpy's float64 ``exp`` (and ``power``, used for weeks beyond
:attr:`FeedbackParams.p_week`) are the C library's except on AVX-512 CPUs, where numpy dispatches
its own; there a response time may differ from :func:`respond`'s in the last bit.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mer_gym.labels import EMOTIONS
from simulators.users.profile import Feedback
from simulators.users.stream import Stream

NONE = -1
"""``Response.answer`` when no explicit feedback was given."""


@dataclass
class UserState:
    """What changes in a user during a pilot (reset per pilot)."""

    engagement: float = 1.0


class Response(NamedTuple):
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
    x = stream.lists
    truth = x["label"][step]
    wrong = prediction != truth
    e = state.engagement
    p = fb.p_explicit * (1.0 - fb.weekly_decay) ** x["week"][step] * e
    if x["hour"][step] < fb.morning_until:
        p *= fb.morning_factor
    explicit = x["u_explicit"][step] < p
    answer = NONE
    if explicit:
        answer = truth
        if x["u_label_noise"][step] < fb.label_noise:
            answer = (truth + x["noise_offset"][step]) % len(EMOTIONS)
    confirmed = explicit and answer == prediction
    rt = math.exp(math.log(fb.rt_median_s) + fb.rt_sigma * (x["z_rt"][step] + fb.implicit_margin * wrong))
    cue = e + fb.engagement_noise * (x["z_engagement"][step] - fb.implicit_margin * wrong)
    state.engagement = e * (1.0 - fb.erosion) if wrong else e + fb.recovery * (1.0 - e)
    return Response(
        step=step,
        deliver_step=x["deliver_step"][step],
        explicit=explicit,
        confirmed=confirmed,
        corrected=explicit and not confirmed,
        answer=answer,
        response_time_s=rt,
        engagement=cue,
        p_explicit=p,
    )


# ---- N users at once -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FeedbackParams:
    """The :class:`~simulators.users.profile.Feedback` parameters of N users as arrays (N,),
    gathered once (:meth:`of`) for :func:`respond_batch`.

    ``decay_base`` is ``1 - weekly_decay`` and ``log_rt_median`` is ``math.log(rt_median_s)``,
    each computed as :func:`respond` computes it.
    ``p_week`` (N, weeks) holds ``p_explicit * (1 - weekly_decay) ** week`` for the first
    ``weeks`` weeks, computed in Python floats (:func:`respond_batch` looks it up, exactly and
    faster than numpy's ``power``; later weeks are computed with ``numpy.float_power``).
    """

    p_explicit: np.ndarray
    decay_base: np.ndarray
    morning_factor: np.ndarray
    morning_until: np.ndarray
    label_noise: np.ndarray
    log_rt_median: np.ndarray
    rt_sigma: np.ndarray
    implicit_margin: np.ndarray
    engagement_noise: np.ndarray
    erosion: np.ndarray
    recovery: np.ndarray
    p_week: np.ndarray

    @classmethod
    def of(cls, feedbacks: Sequence[Feedback], weeks: int = 0) -> FeedbackParams:
        """From one :class:`Feedback` per user (e.g. ``[p.feedback for p in profiles]``), with the
        explicit-feedback rate tabulated for ``weeks`` weeks (e.g. the longest pilot's:
        ``max(p.schedule.days for p in profiles) // 7 + 1``)."""
        fbs = list(feedbacks)
        if isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 0:
            raise ValueError(f"weeks = {weeks!r}: expected an integer >= 0")

        def col(values: list) -> np.ndarray:
            out = np.array(values, np.float64)
            out.setflags(write=False)
            return out

        return cls(
            p_explicit=col([fb.p_explicit for fb in fbs]),
            decay_base=col([1.0 - fb.weekly_decay for fb in fbs]),
            morning_factor=col([fb.morning_factor for fb in fbs]),
            morning_until=col([fb.morning_until for fb in fbs]),
            label_noise=col([fb.label_noise for fb in fbs]),
            log_rt_median=col([math.log(fb.rt_median_s) for fb in fbs]),
            rt_sigma=col([fb.rt_sigma for fb in fbs]),
            implicit_margin=col([fb.implicit_margin for fb in fbs]),
            engagement_noise=col([fb.engagement_noise for fb in fbs]),
            erosion=col([fb.erosion for fb in fbs]),
            recovery=col([fb.recovery for fb in fbs]),
            p_week=col(
                [[fb.p_explicit * (1.0 - fb.weekly_decay) ** w for w in range(weeks)] for fb in fbs]
            ).reshape(len(fbs), weeks),
        )

    def __len__(self) -> int:
        return len(self.p_explicit)


class Dice(NamedTuple):
    """What :func:`respond` reads from each user's stream at that user's step (arrays (N,)):
    the truth, the time and the pre-drawn dice (see :class:`~simulators.users.stream.Stream`)."""

    label: np.ndarray
    week: np.ndarray
    hour: np.ndarray
    u_explicit: np.ndarray
    u_label_noise: np.ndarray
    noise_offset: np.ndarray
    z_rt: np.ndarray
    z_engagement: np.ndarray
    deliver_step: np.ndarray

    @classmethod
    def at(cls, streams: Sequence[Stream], steps: Sequence[int] | np.ndarray) -> Dice:
        """Gather ``streams[i]``'s entries at ``steps[i]`` (a Python loop over the users: for
        tests and small N; the vector env gathers from padded arrays instead).

        Raises:
            IndexError: a step outside its stream.
        """
        steps = [int(t) for t in steps]
        if len(steps) != len(streams):
            raise ValueError(
                f"{len(steps)} steps for {len(streams)} streams: expected one step per stream"
            )
        for i, (st, t) in enumerate(zip(streams, steps, strict=True)):
            if not 0 <= t < len(st):
                raise IndexError(f"steps[{i}] = {t} is outside stream {i}'s {len(st)} interactions")
        return cls(
            *(
                np.array([getattr(st, f)[t] for st, t in zip(streams, steps, strict=True)])
                for f in cls._fields
            )
        )


class BatchResponse(NamedTuple):
    """:class:`Response` for N users (arrays (N,)), plus ``engagement``: the users' engagement
    state after the response (what :func:`respond` writes into :class:`UserState`)."""

    step: np.ndarray
    deliver_step: np.ndarray
    explicit: np.ndarray
    confirmed: np.ndarray
    corrected: np.ndarray
    answer: np.ndarray
    response_time_s: np.ndarray
    engagement_cue: np.ndarray
    p_explicit: np.ndarray
    engagement: np.ndarray


def respond_batch(
    params: FeedbackParams,
    dice: Dice,
    step: np.ndarray,
    prediction: np.ndarray,
    engagement: np.ndarray,
    *,
    validate: bool = True,
) -> BatchResponse:
    """:func:`respond` for N users at once: user ``i`` is at interaction ``step[i]``, sees
    ``prediction[i]``, has engagement ``engagement[i]`` and the feedback parameters
    ``params[i]``; ``dice`` holds its stream's entries at ``step[i]`` (:meth:`Dice.at`).

    Same formulas, same order of operations as :func:`respond` (see the module docstring for when
    the result is bit-identical). Pure: the new engagement comes back in
    :attr:`BatchResponse.engagement` rather than being written into ``engagement``.
    ``validate=False`` skips the checks below (for callers that guarantee them, such as the
    vector env, whose predictions are argmaxes).

    Raises:
        ValueError: arrays of different lengths, or a prediction that is not a class index in
            0..5 (naming the first bad entry).
    """
    n = len(params)
    pred = np.asarray(prediction)
    e = np.asarray(engagement, np.float64)
    step = np.asarray(step)
    if validate:
        _check_batch(n, step, pred, e, dice)
    truth = dice.label.astype(np.int64)
    wrong = pred != truth
    # p = fb.p_explicit * (1.0 - fb.weekly_decay) ** week * e, then * morning_factor in the morning
    weeks = params.p_week.shape[1]
    if weeks and int(dice.week.max()) < weeks:
        p = params.p_week.take(np.arange(0, n * weeks, weeks) + dice.week) * e
    else:
        p = params.p_explicit * np.float_power(params.decay_base, dice.week) * e
    p = np.where(dice.hour < params.morning_until, p * params.morning_factor, p)
    explicit = dice.u_explicit < p
    noisy = dice.u_label_noise < params.label_noise
    answer = np.where(noisy, (truth + dice.noise_offset) % len(EMOTIONS), truth)
    answer = np.where(explicit, answer, NONE)
    confirmed = explicit & (answer == pred)
    margin = params.implicit_margin * wrong
    rt = np.exp(params.log_rt_median + params.rt_sigma * (dice.z_rt + margin))
    cue = e + params.engagement_noise * (dice.z_engagement - margin)
    new_e = np.where(wrong, e * (1.0 - params.erosion), e + params.recovery * (1.0 - e))
    return BatchResponse(
        step=step,
        deliver_step=np.asarray(dice.deliver_step),
        explicit=explicit,
        confirmed=confirmed,
        corrected=explicit & ~confirmed,
        answer=answer,
        response_time_s=rt,
        engagement_cue=cue,
        p_explicit=p,
        engagement=new_e,
    )


def _check_batch(n: int, step: np.ndarray, pred: np.ndarray, e: np.ndarray, dice: Dice) -> None:
    for name, arr in (
        ("step", step),
        ("prediction", pred),
        ("engagement", e),
        *zip(Dice._fields, dice, strict=True),
    ):
        if np.shape(arr) != (n,):
            raise ValueError(
                f"{name} has shape {np.shape(arr)}: expected ({n},), one entry per user of params"
            )
    if pred.dtype.kind not in "iu":
        raise ValueError(
            f"prediction has dtype {pred.dtype}: expected integer class indices in 0..{len(EMOTIONS) - 1}"
        )
    bad = (pred < 0) | (pred >= len(EMOTIONS))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"prediction[{i}] = {pred[i].item()!r}: expected a class index in 0..{len(EMOTIONS) - 1}"
        )
