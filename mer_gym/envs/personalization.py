"""The Gymnasium environment: fusion-weight personalization on a simulated user's stream."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mer_gym.envs.fusion import UNIFORM, PoolArrays, check_fusion, fuse
from mer_gym.envs.privacy import LocalPrivacy, check_epsilon
from mer_gym.envs.reward import RewardSignal, RunningZ, make_reward
from mer_gym.labels import EMOTIONS
from simulators.users.feedback import Response, UserState, respond
from simulators.users.pool import UserPool, default_pool
from simulators.users.population import PopulationPreset, sample_population
from simulators.users.profile import Profile
from simulators.users.stream import Stream, draw_stream

NO_EMOTION = len(EMOTIONS)
"""The history entry before any emotion has been detected."""
EPISODES = ("pilot", "day")
ACTION_MODES = ("increments", "levels")
_MAX_TABLES = 64
FEEDBACK_NONE, FEEDBACK_CONFIRMATION, FEEDBACK_CORRECTION = 0, 1, 2


def observation_space(history: int) -> spaces.Dict:
    """The observation space for a history of ``history`` detected emotions."""
    probs = spaces.Box(0.0, 1.0, (len(EMOTIONS),), np.float32)
    return spaces.Dict(
        {
            "face": probs,
            "speech": probs,
            "fused": probs,
            "weights": spaces.Box(0.0, 1.0, (2,), np.float32),
            "history": spaces.MultiDiscrete(np.full(history, len(EMOTIONS) + 1)),
            "explicit": spaces.Discrete(3),
            "response_time": spaces.Box(0.0, 1.0, (1,), np.float32),
            "engagement": spaces.Box(0.0, 1.0, (1,), np.float32),
            "present": spaces.MultiBinary(2),
        }
    )


def weight_levels(delta_w: float) -> np.ndarray:
    """The face weights ``0, delta_w, 2 delta_w, ..., 1`` (``1 / delta_w`` must be an integer)."""
    n = round(1.0 / delta_w)
    if not math.isclose(n * delta_w, 1.0, abs_tol=1e-9):
        raise ValueError(
            f"delta_w = {delta_w!r}: with actions='levels', 1 / delta_w must be an integer (e.g. 0.1, 0.25)"
        )
    return np.round(np.linspace(0.0, 1.0, n + 1), 12)


def check_increments(delta_w: float, increments: Sequence[int]) -> np.ndarray:
    """The weight change of each action: ``delta_w`` times each integer in ``increments``."""
    if isinstance(delta_w, bool) or not isinstance(delta_w, int | float) or not 0.0 < delta_w <= 1.0:
        raise ValueError(f"delta_w = {delta_w!r}: expected a number in (0, 1] (the paper's Δw; default 0.1)")
    incs = list(increments)
    if (
        not incs
        or any(isinstance(i, bool) or not isinstance(i, int | np.integer) for i in incs)
        or len(set(incs)) != len(incs)
        or 0 not in incs
    ):
        raise ValueError(
            f"increments = {increments!r}: expected distinct integers including 0, e.g. (-1, 0, 1) "
            "or (-2, -1, 0, 1, 2) (multiples of delta_w)"
        )
    return np.round(np.asarray(incs, np.float64) * delta_w, 12)


class PopulationSettings:
    """The keyword arguments the single and the vector env share, validated in one place (a mixin
    of both env classes)."""

    def _configure(
        self,
        population: str | PopulationPreset,
        *,
        profiles: Sequence[Profile] | None,
        n_users: int | None,
        population_seed: int | None,
        pool: UserPool | None,
        fusion: str,
        delta_w: float,
        increments: Sequence[int],
        history: int,
        w_face0: float,
        reward: str | Callable[[RewardSignal], Any],
        max_response_time_s: float,
    ) -> None:
        self.pool = pool if pool is not None else default_pool()
        if profiles is None:
            profiles = sample_population(population, self.pool, n_users=n_users, seed=population_seed)
        self.profiles: list[Profile] = list(profiles)
        if not self.profiles:
            raise ValueError("profiles is empty: give at least one user")
        self._user_index = {p.user_id: i for i, p in enumerate(self.profiles)}
        if len(self._user_index) != len(self.profiles):
            raise ValueError("profiles repeat a user_id; every user needs a unique id")
        self.fusion = check_fusion(fusion)
        self.delta_w = float(delta_w)
        self.increments = check_increments(delta_w, increments)
        self._incs = self.increments.tolist()
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ValueError(f"history = {history!r}: expected an integer >= 1 (the paper's k)")
        self.k = history
        self._w0 = check_weight(w_face0, "w_face0")
        self.reward_fn, self._needs_truth = make_reward(reward)
        if not (isinstance(max_response_time_s, int | float) and max_response_time_s > 0):
            raise ValueError(f"max_response_time_s = {max_response_time_s!r}: expected a number > 0")
        self.max_rt = float(max_response_time_s)
        self._arrays = PoolArrays.of(self.pool)


class PersonalizationEnv(PopulationSettings, gym.Env[dict[str, np.ndarray], int]):
    """Personalize the face/speech fusion weight of an emotion recognizer to one simulated user.

    ## Description

    The system of Arzu et al. (2026) recognizes a user's emotion from a face frame and an utterance:
    a face CNN and a speech LSTM each embed their input, and a fusion head (§6.3) combines the two
    embeddings weighted by modality fusion weights ``w_face`` and ``w_speech = 1 - w_face``. A
    personalization policy (§5.5) moves the weights, one interaction at a time, to suit the user.
    One step is one interaction of one simulated user: the policy sees the current sample's face and
    speech softmax, changes the weights, the sample is fused with the new weights, the prediction is
    shown to the user, and the user's feedback makes the reward.

    ## Action Space

    ``Discrete(len(increments))``: action ``a`` moves ``w_face`` by ``increments[a] * delta_w``
    (default ``(-1, 0, 1) * 0.1``: down, keep, up), clipped to [0, 1]; ``w_speech`` follows.
    With ``actions="levels"``, ``Discrete(1 / delta_w + 1)``: action ``a`` sets ``w_face`` to
    ``a * delta_w`` (for bandits over weight levels and per-sample fusion rules).

    ## Observation Space

    A ``Dict`` about the upcoming interaction and the last feedback:

    | key | space | meaning |
    |---|---|---|
    | ``face``, ``speech`` | Box(0, 1, (6,)) | each model's softmax (uniform if the modality is absent) |
    | ``fused`` | Box(0, 1, (6,)) | the fused softmax under the current weights |
    | ``weights`` | Box(0, 1, (2,)) | ``[w_face, w_speech]`` |
    | ``history`` | MultiDiscrete([7] * k) | last k detected emotions, newest first (6: none yet) |
    | ``explicit`` | Discrete(3) | explicit feedback that arrived on the last step: 0 none, 1 confirmation, 2 correction |
    | ``response_time`` | Box(0, 1, (1,)) | last response time / ``max_response_time_s`` (clipped) |
    | ``engagement`` | Box(0, 1, (1,)) | last engagement cue (clipped) |
    | ``present`` | MultiBinary(2) | whether the face and the speech were captured |

    Emotions are indexed as in :data:`mer_gym.labels.EMOTIONS`.

    ## Rewards

    An injected function of the feedback (:mod:`mer_gym.envs.reward`). The default
    (``reward="feedback"``) pays +1 for an explicit confirmation and −1 for a correction, plus at
    most ±0.1 from the implicit cues (response time and engagement, standardized per user). Ground
    truth enters only with ``reward="oracle"`` (+1 right, −1 wrong). Feedback that arrives late
    (diary users) is paid on the step it arrives; ``info["explicit_feedback"]`` names the
    interactions it concerns.

    ## Starting State

    ``w_face = w_face0`` (0.5) or ``options["w_face"]``; empty history; no feedback yet. The user is ``options["user"]``
    (an index or a user id); else, after ``reset(seed=s)``, one drawn from the env's freshly seeded
    generator; else the next user of the population in turn. The stream seed is
    ``options["stream_seed"]``, else the ``seed`` passed to ``reset``, else drawn from the env's
    generator. Every policy reset with the same seed and user meets the same stream (common random
    numbers).

    ## Episode End

    Never terminated; truncated at the end of the user's pilot (``episode="pilot"``, default) or
    of each day (``episode="day"``; the weights, history and user state carry over to the next
    day, and the next reset continues the pilot).

    ## Arguments

    ``population`` (preset name, path or :class:`PopulationPreset`; default ``"paper-pilot"``),
    ``profiles`` (explicit list of :class:`Profile`, overrides ``population``), ``n_users``,
    ``population_seed``, ``pool`` (:class:`UserPool`; default the shipped pool), ``fusion``
    (``"feature"``, ``"late"``, ``"log_linear"``), ``delta_w`` (0.1), ``increments`` ((-1, 0, 1)),
    ``actions`` (``"increments"``, ``"levels"``),
    ``history`` (k = 5), ``w_face0`` (0.5), ``reward`` (``"feedback"``, ``"oracle"`` or a callable),
    ``episode`` (``"pilot"``, ``"day"``), ``max_response_time_s`` (30), ``privacy_epsilon`` (None:
    feedback as given; a number ε > 0: the user's explicit answers and implicit cues pass through
    ε-local differential privacy before the env, its reward or ``info`` see them, see
    :mod:`mer_gym.envs.privacy`; the vector env does not offer it).

    ## User model

    Users come from :mod:`simulators.users` (docs/users.md): a person of the user pool (face and
    voice seen through the frozen models under named capture conditions), contexts with their own
    condition mixes and camera-off / silence rates, Markov emotion dynamics with episodes, and a
    feedback model (explicit feedback decaying by week and eroding after wrong predictions, label
    noise, implicit cues that separate right from wrong predictions, immediate or diary timing).
    Each (user, stream seed) is drawn up front: the stream never shows the true label, which
    ``info["label"]`` reports for evaluation only.

    ## Version History

    * v0: initial version.

    >>> import gymnasium as gym, mer_gym
    >>> env = gym.make("mer_gym/Personalization-v0")
    >>> obs, info = env.reset(seed=0)
    >>> sorted(obs)
    ['engagement', 'explicit', 'face', 'fused', 'history', 'present', 'response_time', 'speech', 'weights']
    >>> obs["weights"].tolist(), info["user_id"] in {"u000", "u001", "u002", "u003", "u004", "u005"}
    ([0.5, 0.5], True)
    >>> env.action_space
    Discrete(3)
    >>> obs, reward, terminated, truncated, info = env.step(2)
    >>> [round(float(w), 2) for w in obs["weights"]], info["w_face"], info["label"] in mer_gym.EMOTIONS
    ([0.6, 0.4], 0.6, True)
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        population: str | PopulationPreset = "paper-pilot",
        *,
        profiles: Sequence[Profile] | None = None,
        n_users: int | None = None,
        population_seed: int | None = None,
        pool: UserPool | None = None,
        fusion: str = "feature",
        delta_w: float = 0.1,
        increments: Sequence[int] = (-1, 0, 1),
        actions: str = "increments",
        history: int = 5,
        w_face0: float = 0.5,
        reward: str | Callable[[RewardSignal], Any] = "feedback",
        episode: str = "pilot",
        max_response_time_s: float = 30.0,
        privacy_epsilon: float | None = None,
        render_mode: str | None = None,
    ) -> None:
        self._configure(
            population, profiles=profiles, n_users=n_users, population_seed=population_seed, pool=pool,
            fusion=fusion, delta_w=delta_w, increments=increments, history=history, w_face0=w_face0,
            reward=reward, max_response_time_s=max_response_time_s,
        )
        if actions not in ACTION_MODES:
            raise ValueError(f"actions = {actions!r}: expected one of {', '.join(ACTION_MODES)}")
        self.actions = actions
        self.levels = weight_levels(delta_w) if actions == "levels" else None
        self._levels = self.levels.tolist() if self.levels is not None else []
        if episode not in EPISODES:
            raise ValueError(f"episode = {episode!r}: expected one of {', '.join(EPISODES)}")
        self.episode = episode
        eps = check_epsilon(privacy_epsilon)
        self.privacy = LocalPrivacy(eps) if eps is not None else None
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode = {render_mode!r}: expected None or one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(len(self._incs) if actions == "increments" else len(self._levels))
        self.observation_space = observation_space(history)
        self._next_user = 0
        self._stream: Stream | None = None
        self._t = 0

    # ---- weights ------------------------------------------------------------------------------

    @property
    def w_face(self) -> float:
        """The current face weight (``w_speech = 1 - w_face``)."""
        return self._w

    @w_face.setter
    def w_face(self, value: float) -> None:
        self._w = check_weight(value, "w_face")

    @property
    def t(self) -> int:
        """Index of the current interaction (the one the observation shows) in the stream."""
        return self._t

    @property
    def w_face0(self) -> float:
        """The face weight a pilot starts at (the ``w_face0`` argument)."""
        return self._w0

    @property
    def needs_truth(self) -> bool:
        """Whether the reward function receives ground truth (``reward="oracle"``)."""
        return self._needs_truth

    def fused_table(self, w_face: float) -> np.ndarray:
        """The fused softmax of every interaction of the current stream at face weight ``w_face``
        (read-only (T, 6) float64; for analyses and ground-truth bounds, not for policies)."""
        w = check_weight(w_face, "w_face")
        self._fused(0, w)
        return self._tables[w]

    def observe(self) -> dict[str, np.ndarray]:
        """The current observation (e.g. after setting :attr:`w_face` between reset and step)."""
        if self._stream is None:
            raise gym.error.ResetNeeded("call reset() before observe()")
        return self._obs()

    @property
    def stream(self) -> Stream:
        if self._stream is None:
            raise gym.error.ResetNeeded("call reset() before using the environment")
        return self._stream

    # ---- Gymnasium API ------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"user", "stream_seed", "w_face"}
        if unknown:
            raise ValueError(
                f"reset options {sorted(unknown)} are unknown: expected 'user', 'stream_seed' and/or 'w_face'"
            )
        continue_day = (
            self.episode == "day"
            and self._stream is not None
            and seed is None
            and not options
            and self._t < len(self._stream)
        )
        if not continue_day:
            self._start_pilot(options, seed)
            if "w_face" in options:
                self._w = check_weight(options["w_face"], "options['w_face']")
        self._day_end = self._end_of_day(self._t)
        return self._obs(), self._step_info(self._t)

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        st = self._stream
        if st is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        t = self._t
        if t >= self._day_end:
            raise gym.error.ResetNeeded("the episode has ended (truncated): call reset()")
        try:
            a = operator.index(action)
        except TypeError:
            a = -1
        if not 0 <= a < self.action_space.n or isinstance(action, bool):
            meaning = (
                f"weight changes {self._incs}" if self.actions == "increments" else f"face weights {self._levels}"
            )
            raise ValueError(
                f"action = {action!r} is invalid: expected an integer in 0..{self.action_space.n - 1} ({meaning})"
            )
        w = self._w
        if not 0.0 <= w <= 1.0:  # a wrapper may have set it (False for NaN too)
            check_weight(w, "w_face")
        if self.actions == "increments":
            w = min(1.0, max(0.0, round(w + self._incs[a], 12)))
        else:
            w = self._levels[a]
        self._w = w
        if w not in self._tables:
            self._fused(t, w)
        pred = self._argmax[w][t]
        response = respond(st, t, pred, self._user)
        if self.privacy is not None:  # the user's side privatizes before the system sees anything
            response = self._privatize(response, t, pred)
        arrived = self._pending.pop(t, None)
        confirmations = corrections = 0
        explicit_info = []
        if response.explicit:
            item = (t, response.confirmed, response.answer)
            if response.deliver_step == t:
                arrived = [*(arrived or ()), item]
            else:
                self._pending.setdefault(response.deliver_step, []).append(item)
        if arrived:
            for step, ok, answer in arrived:
                explicit_info.append({"step": step, "confirmed": ok, "answer": EMOTIONS[answer]})
                confirmations += ok
            corrections = len(arrived) - confirmations
        rt = response.response_time_s
        rt_z = self._rt_z(math.log(rt))
        eng_z = self._eng_z(response.engagement)
        x = st.lists
        label = x["label"][t]
        correct = pred == label
        signal = RewardSignal(confirmations, corrections, rt_z, eng_z, correct if self._needs_truth else None)
        reward = float(self.reward_fn(signal))
        if not math.isfinite(reward):
            raise ValueError(f"the reward function returned {reward!r} for {signal}: it must return a finite number")
        self._history = [pred, *self._history[:-1]]
        self._last_explicit = (
            FEEDBACK_CORRECTION if corrections else FEEDBACK_CONFIRMATION if confirmations else FEEDBACK_NONE
        )
        self._last_rt = min(rt / self.max_rt, 1.0)
        self._last_engagement = min(max(response.engagement, 0.0), 1.0)
        info = {
            "user_id": st.profile.user_id,
            "step": t,
            "day": x["pilot_day"][t],
            "week": x["week"][t],
            "context": st.context_names[x["context"][t]],
            "stream_seed": st.seed,
            "label": EMOTIONS[label],
            "label_index": label,
            "prediction": EMOTIONS[pred],
            "prediction_index": pred,
            "correct": correct,
            "w_face": w,
            "explicit_feedback": explicit_info,
            "response_time_s": rt,
            "engagement": response.engagement,
        }
        self._t = t + 1
        truncated = self._t >= self._day_end
        obs = self._obs() if self._t < len(st) else self._obs(t)
        if self.render_mode == "ansi":
            self._last_render = self._render_line(info, reward)
        return obs, reward, False, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return getattr(self, "_last_render", f"user {self.stream.user_id}: no step yet (w_face {self._w:.2f})")

    # ---- internals ----------------------------------------------------------------------------

    def _privatize(self, response: Response, t: int, pred: int) -> Response:
        """The feedback as the system receives it under local differential privacy
        (:mod:`mer_gym.envs.privacy`)."""
        ldp, dice = self.privacy, self._privacy_dice
        assert ldp is not None and dice is not None
        changes: dict[str, Any] = {}
        if response.explicit:
            answer = ldp.answer(response.answer, dice.u[t], dice.offset[t])
            changes.update(answer=answer, confirmed=answer == pred, corrected=answer != pred)
        rt = ldp.cue(min(response.response_time_s / self.max_rt, 1.0), dice.noise_rt[t]) * self.max_rt
        changes["response_time_s"] = max(rt, 1e-3)  # the reward's z-score takes its log
        changes["engagement"] = ldp.cue(min(max(response.engagement, 0.0), 1.0), dice.noise_engagement[t])
        return response._replace(**changes)

    def _start_pilot(self, options: dict[str, Any], seed: int | None) -> None:
        user = options.get("user")
        if user is None and seed is not None:
            index = int(self.np_random.integers(len(self.profiles)))  # a seeded reset is reproducible
        elif user is None:
            index = self._next_user
        elif isinstance(user, str):
            if user not in self._user_index:
                raise ValueError(f"options['user'] = {user!r}: no such user (users: {', '.join(self._user_index)})")
            index = self._user_index[user]
        elif isinstance(user, int | np.integer) and not isinstance(user, bool) and 0 <= user < len(self.profiles):
            index = int(user)
        else:
            raise ValueError(f"options['user'] = {user!r}: expected a user id or an index in 0..{len(self.profiles) - 1}")
        self._next_user = (index + 1) % len(self.profiles)
        if "stream_seed" in options:
            stream_seed = options["stream_seed"]
        elif seed is not None:
            stream_seed = seed
        else:
            stream_seed = int(self.np_random.integers(2**31))
        st = draw_stream(self.profiles[index], self.pool, stream_seed)
        if len(st) == 0:
            raise ValueError(
                f"user {st.user_id} has no interactions with stream seed {stream_seed} "
                "(a pilot too short or a compliance too low): lengthen its schedule"
            )
        self._stream = st
        a = self._arrays
        fp = st.face_present.astype(np.float64)
        sp = st.speech_present.astype(np.float64)
        self._face_proj = a.face_proj[st.face_row] * fp[:, None]
        self._speech_proj = a.speech_proj[st.speech_row] * sp[:, None]
        self._face_probs = a.face_probs[st.face_row]
        self._speech_probs = a.speech_probs[st.speech_row]
        self._fp, self._sp = fp, sp
        self._tables: dict[float, np.ndarray] = {}
        self._argmax: dict[float, list[int]] = {}
        self._tables32: dict[float, np.ndarray] = {}
        self._weights32: dict[float, np.ndarray] = {}
        self._fuse_grid()
        self._obs_face = np.where(st.face_present[:, None], self._face_probs, UNIFORM).astype(np.float32)
        self._obs_speech = np.where(st.speech_present[:, None], self._speech_probs, UNIFORM).astype(np.float32)
        self._present = np.stack([st.face_present, st.speech_present], axis=1).astype(np.int8)
        self._t = 0
        self._w = self._w0
        self._history = [NO_EMOTION] * self.k
        self._user = UserState()
        self._rt_z, self._eng_z = RunningZ(), RunningZ()
        self._pending: dict[int, list[tuple[int, bool, int]]] = {}
        self._last_explicit, self._last_rt, self._last_engagement = FEEDBACK_NONE, 0.0, 0.0
        self._privacy_dice = (
            LocalPrivacy.dice(len(st), st.seed, st.user_id) if self.privacy is not None else None
        )

    def _end_of_day(self, t: int) -> int:
        """Index one past the episode's last interaction, starting from ``t``."""
        st = self.stream
        if self.episode == "pilot" or t >= len(st):
            return len(st)
        day = st.pilot_day[t]
        return int(np.searchsorted(st.pilot_day, day, side="right"))

    def _fuse_grid(self) -> None:
        """Fuse the whole stream at every weight of the grid the actions move on, in one batched
        call (when the weights live on a grid: level actions, or increments from a start weight
        on the ``delta_w`` grid); other weights are fused when first used."""
        if self.actions == "levels":
            grid = self._levels
        else:
            n = round(1.0 / self.delta_w)
            on_grid = math.isclose(n * self.delta_w, 1.0, abs_tol=1e-9)
            if not on_grid or not math.isclose(self._w0 / self.delta_w, round(self._w0 / self.delta_w), abs_tol=1e-9):
                return
            grid = np.round(np.linspace(0.0, 1.0, n + 1), 12).tolist()
        t, k = len(self._fp), len(grid)
        w = np.repeat(np.asarray(grid), t)
        tables = fuse(
            self.fusion, self._arrays, np.tile(self._face_proj, (k, 1)), np.tile(self._speech_proj, (k, 1)),
            np.tile(self._face_probs, (k, 1)), np.tile(self._speech_probs, (k, 1)),
            np.tile(self._fp, k), np.tile(self._sp, k), w,
        ).reshape(k, t, -1)
        for j, level in enumerate(grid):
            self._store(level, np.ascontiguousarray(tables[j]))

    def _store(self, w: float, table: np.ndarray) -> None:
        bad = ~np.isfinite(table).all(axis=1)
        if bad.any():
            raise ValueError(
                f"user {self.stream.user_id}, interaction {int(np.flatnonzero(bad)[0])}: the fused "
                "prediction holds NaN or inf (a pool row is broken); rebuild the user pool with `make pool`"
            )
        table.setflags(write=False)
        self._tables[w] = table
        self._argmax[w] = table.argmax(axis=1).tolist()
        self._tables32[w] = table.astype(np.float32)
        self._weights32[w] = np.array([w, 1.0 - w], np.float32)

    def _fused(self, t: int, w: float) -> np.ndarray:
        """The fused softmax of interaction ``t`` at face weight ``w``.

        The whole stream is fused at once the first time a weight is used (one batched
        :func:`~mer_gym.envs.fusion.fuse` call; a pilot visits a handful of weights), so that a
        step is a table lookup.
        """
        table = self._tables.get(w)
        if table is None:
            if len(self._tables) >= _MAX_TABLES:  # a wrapper setting arbitrary weights: bound memory
                for cache in (self._tables, self._argmax, self._tables32, self._weights32):
                    cache.clear()
            n = len(self._fp)
            table = fuse(
                self.fusion, self._arrays, self._face_proj, self._speech_proj, self._face_probs,
                self._speech_probs, self._fp, self._sp, np.full(n, w),
            )
            self._store(w, table)
        return table[t]

    def _obs(self, t: int | None = None) -> dict[str, np.ndarray]:
        t = self._t if t is None else t
        w = self._w
        if w not in self._tables:
            self._fused(t, w)
        return {
            "face": self._obs_face[t].copy(),
            "speech": self._obs_speech[t].copy(),
            "fused": self._tables32[w][t].copy(),
            "weights": self._weights32[w].copy(),
            "history": np.array(self._history, np.int64),
            "explicit": self._last_explicit,
            "response_time": np.array([self._last_rt], np.float32),
            "engagement": np.array([self._last_engagement], np.float32),
            "present": self._present[t].copy(),
        }

    def _step_info(self, t: int) -> dict[str, Any]:
        st = self.stream
        t = min(t, len(st) - 1)
        return {
            "user_id": st.user_id,
            "step": t,
            "day": int(st.pilot_day[t]),
            "week": int(st.week[t]),
            "context": st.context_names[st.context[t]],
            "stream_seed": st.seed,
        }

    def _render_line(self, info: dict[str, Any], reward: float) -> str:
        mark = "right" if info["correct"] else "wrong"
        return (
            f"user {info['user_id']} day {info['day']:2d} step {info['step']:3d}  w_face {info['w_face']:.2f}  "
            f"predicted {info['prediction']:9s} felt {info['label']:9s} ({mark})  reward {reward:+.2f}"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_arrays", None)  # float64 copies of the pool: rebuilt from the pool on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._arrays = PoolArrays.of(self.pool)


def check_weight(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise ValueError(f"{name} = {value!r}: expected a number in [0, 1]")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"{name} = {value!r} is outside [0, 1]: fusion weights are kept in [0, 1] "
            "(w_speech = 1 - w_face); a wrapper that sets the weight must clip it"
        )
    return value
