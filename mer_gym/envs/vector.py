"""A native numpy vector environment: one sub-environment per simulated user, stepped all at once."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mer_gym.envs.fusion import UNIFORM, PoolArrays, fuse
from mer_gym.envs.personalization import (
    FEEDBACK_CONFIRMATION,
    FEEDBACK_CORRECTION,
    FEEDBACK_NONE,
    NO_EMOTION,
    PopulationSettings,
    observation_space,
)
from mer_gym.envs.reward import RewardSignal
from mer_gym.labels import EMOTIONS
from simulators.users.feedback import Dice, FeedbackParams, respond_batch
from simulators.users.pool import UserPool
from simulators.users.population import PopulationPreset
from simulators.users.profile import Profile
from simulators.users.stream import Stream, draw_stream

# What one step reads of a user's interaction, packed into two 32-byte records (one gather each:
# numpy's take moves 32-byte items without a memmove per item): the dice in float64, and the rest.
_DICE = np.dtype(
    [("u_explicit", "<f8"), ("u_label_noise", "<f8"), ("z_rt", "<f8"), ("z_engagement", "<f8")]
)
_INFO = np.dtype(
    [
        ("face", "<i4"),  # pool row, or the appended zero/uniform row when the face is absent
        ("speech", "<i4"),
        ("face_raw", "<i4"),  # the stream's own row (late and log-linear fusion)
        ("speech_raw", "<i4"),
        ("deliver_step", "<i4"),
        ("day", "<i2"),
        ("week", "<i2"),
        ("label", "i1"),
        ("noise_offset", "i1"),
        ("face_present", "i1"),
        ("speech_present", "i1"),
        ("hour", "<f4"),
    ]
)
_RECORD = np.dtype((np.void, 32))
assert _DICE.itemsize == _INFO.itemsize == _RECORD.itemsize
_STEP_KEYS = (
    "label_index",
    "prediction_index",
    "correct",
    "w_face",
    "confirmations",
    "corrections",
)


@functools.lru_cache(maxsize=4)
def _tables(arrays: PoolArrays) -> tuple[np.ndarray, ...]:
    """The pool's projections (float64) with a zero row appended and its softmaxes (float32, as
    observed) with a uniform row appended: an absent modality gathers the last row."""

    def extend(a: np.ndarray, row: np.ndarray, dtype: type) -> np.ndarray:
        out = np.concatenate([a, row[None]]).astype(dtype)
        out.setflags(write=False)
        return out

    zero = np.zeros(arrays.b1.shape)
    return (
        extend(arrays.face_proj, zero, np.float64),
        extend(arrays.speech_proj, zero, np.float64),
        extend(arrays.face_probs, UNIFORM, np.float32),
        extend(arrays.speech_probs, UNIFORM, np.float32),
    )


class PersonalizationVectorEnv(PopulationSettings, VectorEnv):
    """:class:`~mer_gym.envs.personalization.PersonalizationEnv` for a whole population at once.

    Sub-environment ``i`` always plays user ``i`` (``profiles[i]``); ``num_envs = len(profiles)``.
    One step steps every user by one interaction, in numpy (no per-user Python loop): at a thousand
    users, several hundred thousand user-steps per second on one core (``benchmarks/bench_env.py``),
    tens of times the single env's rate. An episode is the user's whole pilot (there is no
    ``episode="day"`` mode); pilots have different lengths, so sub-environments end at different
    steps. Starting a pilot draws the user's stream (about 1.5 ms a user, in Python): ``reset`` pays
    it for everyone, a step that autoresets users pays it for those.

    Each sub-environment follows the single env exactly: with the same user, stream seed and
    actions it gives the same observations, predictions, weights and rewards (the weights by the
    single env's own arithmetic; with feature fusion the fused probabilities agree to about 1e-15,
    the batched matrix product summing in another order than the single env's vector product,
    which could at worst move a float32 observation by one ulp). Observations are the single env's, batched
    (:func:`gymnasium.vector.utils.batch_space` of its ``Dict`` space); rewards come from the same
    injected reward function, called once per step with a :class:`RewardSignal` of arrays.

    **Reset.** ``reset(seed=s)`` starts every user's pilot on stream seed ``s`` (each user's
    stream differs anyway: :func:`~simulators.users.stream.user_seed` mixes in the user id), as the
    single env's ``reset(seed=s, options={"user": i})`` does; without a seed the stream seed is
    drawn once from the env's generator. Options: ``stream_seed`` (overrides the seed) and
    ``reset_mask`` (a bool array (num_envs,): reset only those users, the others carry on, as in
    Gymnasium's vector envs).

    **Autoreset** (``AutoresetMode.NEXT_STEP``, as ``CartPoleVectorEnv``): the step that ends a
    user's pilot returns ``truncated[i] = True`` (never ``terminated``); on the next step that
    sub-environment starts a new pilot of the same user on the next stream seed (the previous
    one + 1), its action is ignored, its reward is 0 and its observation is the new pilot's first.

    **Infos** are a dict of arrays (num_envs,): ``step``, ``day``, ``week`` and ``stream_seed`` of
    the interaction, and, for users that stepped (not those autoreset on this step), the step's
    ``label_index``, ``prediction_index``, ``correct``, ``w_face``, ``confirmations`` and
    ``corrections`` (explicit feedback arriving on this step). As in Gymnasium, ``info["_key"]``
    says which entries of ``info[key]`` are set.

    Arguments as :class:`PersonalizationEnv`'s (no ``episode`` and no ``render_mode``):
    ``population``, ``profiles``, ``n_users``, ``population_seed``, ``pool``, ``fusion``,
    ``delta_w``, ``increments``, ``history``, ``w_face0``, ``reward``, ``max_response_time_s``;
    and ``num_envs``, the number of users (``n_users`` by the name ``gymnasium.make_vec`` uses, so
    that an id registered with this class as ``vector_entry_point`` makes it).

    >>> import numpy as np
    >>> from mer_gym.envs import PersonalizationVectorEnv
    >>> envs = PersonalizationVectorEnv("paper-pilot")
    >>> obs, info = envs.reset(seed=0)
    >>> envs.num_envs, obs["fused"].shape, envs.action_space
    (6, (6, 6), MultiDiscrete([3 3 3 3 3 3]))
    >>> obs, reward, terminated, truncated, info = envs.step(np.full(6, 2))
    >>> info["w_face"].round(2).tolist(), info["step"].tolist()
    ([0.6, 0.6, 0.6, 0.6, 0.6, 0.6], [0, 0, 0, 0, 0, 0])
    """

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": [],
    }

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
        history: int = 5,
        w_face0: float = 0.5,
        reward: str | Callable[[RewardSignal], Any] = "feedback",
        max_response_time_s: float = 30.0,
        num_envs: int | None = None,
    ) -> None:
        if num_envs is not None:  # gymnasium.make_vec passes the number of sub-envs: the users
            if n_users is not None and n_users != num_envs:
                raise ValueError(
                    f"num_envs = {num_envs!r} and n_users = {n_users!r} disagree: give one"
                )
            if profiles is not None and len(profiles) != num_envs:
                raise ValueError(
                    f"num_envs = {num_envs!r} but {len(profiles)} profiles: one sub-env per user"
                )
            n_users = num_envs
        self._configure(
            population, profiles=profiles, n_users=n_users, population_seed=population_seed, pool=pool,
            fusion=fusion, delta_w=delta_w, increments=increments, history=history, w_face0=w_face0,
            reward=reward, max_response_time_s=max_response_time_s,
        )
        self.user_ids = [p.user_id for p in self.profiles]

        n = self.num_envs = len(self.profiles)
        self.single_observation_space = observation_space(history)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.single_action_space = spaces.Discrete(len(self.increments))
        self.action_space = batch_space(self.single_action_space, n)

        self._face_ext, self._speech_ext, self._face_obs, self._speech_obs = _tables(self._arrays)
        weeks = max(p.schedule.days for p in self.profiles) // 7 + 1
        self._feedback = FeedbackParams.of([p.feedback for p in self.profiles], weeks=weeks)
        if self.fusion == "feature":  # work buffers of the fusion head (N, hidden) and its logits
            self._base = np.empty((n, len(self._arrays.b1)))
            self._diff = np.empty_like(self._base)
            self._hidden = np.empty_like(self._base)
            self._z = np.empty((n, len(EMOTIONS)))
        self._rows = np.arange(n)
        # the reachable face weights, numbered as met; _next[s, a] is the state action a leads to
        self._w_values: list[float] = []
        self._w_index: dict[float, int] = {}
        self._next = np.full((0, len(self._incs)), -1, np.int64)
        self._w_state(self._w0)
        self._started = False

    # ---- Gymnasium API ------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"stream_seed", "reset_mask"}
        if unknown:
            raise ValueError(
                f"reset options {sorted(unknown)} are unknown: expected 'stream_seed' and/or 'reset_mask'"
            )
        mask = options.get("reset_mask")
        if mask is None:
            rows = self._rows
        else:
            if (
                not isinstance(mask, np.ndarray)
                or mask.dtype != np.bool_
                or mask.shape != (self.num_envs,)
            ):
                raise ValueError(
                    f"options['reset_mask'] = {mask!r}: expected a numpy bool array of shape ({self.num_envs},)"
                )
            if not mask.any():
                raise ValueError("options['reset_mask'] has no True entry: nothing to reset")
            if not self._started and not mask.all():
                raise ValueError(
                    "options['reset_mask'] needs a full reset() first: the other users have no pilot yet"
                )
            rows = np.flatnonzero(mask)
        if "stream_seed" in options:
            stream_seed = options["stream_seed"]
            if (
                isinstance(stream_seed, bool)
                or not isinstance(stream_seed, int | np.integer)
                or stream_seed < 0
            ):
                raise ValueError(
                    f"options['stream_seed'] = {stream_seed!r}: expected an integer >= 0"
                )
        elif seed is not None:
            stream_seed = seed
        else:
            stream_seed = int(self.np_random.integers(2**31))
        self._start(rows, np.full(len(rows), int(stream_seed), np.int64))
        obs = self._observe()
        info = self._reset_info(rows)
        return obs, info

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = self._check_actions(actions)
        n = self.num_envs
        autoreset = self._prev_done
        state = self._next[self._state, a]
        if state.min() < 0:
            state = self._fill_next(a)
        w = self._w_table[state]
        # the prediction at (t, new w) and the user's answer, from what the last _observe gathered
        pred = self._predict(w, state != self._state)
        gi, gd = self._gi, self._gd
        t = self._t
        label = gi["label"].astype(np.int64)
        dice = Dice(
            label=label,
            week=gi["week"],
            hour=gi["hour"].astype(np.float64),
            u_explicit=gd["u_explicit"],
            u_label_noise=gd["u_label_noise"],
            noise_offset=gi["noise_offset"],
            z_rt=gd["z_rt"],
            z_engagement=gd["z_engagement"],
            deliver_step=gi["deliver_step"],
        )
        r = respond_batch(self._feedback, dice, self._tc, pred, self._engagement, validate=False)
        self._engagement = r.engagement
        # explicit feedback, immediate or in the evening diary, is paid on the step it arrives
        at_deliver = self._offsets + r.deliver_step
        self._pend_conf[at_deliver] += r.confirmed
        self._pend_corr[at_deliver] += r.corrected
        confirmations = self._pend_conf[self._flat]
        corrections = self._pend_corr[self._flat]
        rt_z = self._rt_z.update(np.log(r.response_time_s))
        eng_z = self._eng_z.update(r.engagement_cue)
        correct = pred == label
        reward = self._reward(confirmations, corrections, rt_z, eng_z, correct)

        history = np.empty_like(self._history)
        history[:, 0] = pred
        history[:, 1:] = self._history[:, :-1]
        self._history = history
        self._last_explicit = np.where(
            corrections > 0,
            FEEDBACK_CORRECTION,
            np.where(confirmations > 0, FEEDBACK_CONFIRMATION, FEEDBACK_NONE),
        )
        self._last_rt = np.minimum(r.response_time_s / self.max_rt, 1.0)
        self._last_engagement = np.minimum(np.maximum(r.engagement_cue, 0.0), 1.0)
        self._state = state
        self._t = t + 1
        truncated = self._t >= self._len

        info: dict[str, Any] = {
            "label_index": label,
            "prediction_index": pred,
            "correct": correct,
            "w_face": w,
            "confirmations": confirmations.astype(np.int64),
            "corrections": corrections.astype(np.int64),
            "step": self._tc,
            "day": gi["day"].astype(np.int64),
            "week": gi["week"].astype(np.int64),
            "stream_seed": self._seeds.copy(),
        }
        stepped = ~autoreset
        if autoreset.any():
            # NEXT_STEP autoreset: these users start their next pilot; their action was ignored
            rows = np.flatnonzero(autoreset)
            self._start(rows, self._seeds[rows] + 1)
            reward[rows] = 0.0
            truncated[rows] = False
            for key in ("confirmations", "corrections", "correct"):
                info[key][rows] = 0
            for key in ("label_index", "prediction_index"):
                info[key][rows] = -1
            info["w_face"][rows] = self._w0
        obs = self._observe()
        if not stepped.all():
            info["step"] = info["step"].copy()
            info["step"][rows] = self._tc[rows]
            info["day"][rows] = self._gi["day"][rows]
            info["week"][rows] = self._gi["week"][rows]
            info["stream_seed"][rows] = self._seeds[rows]
        everyone = np.ones(n, np.bool_)
        for key in _STEP_KEYS:
            info[f"_{key}"] = stepped
        for key in ("step", "day", "week", "stream_seed"):
            info[f"_{key}"] = everyone
        self._prev_done = truncated.copy()
        return obs, reward, np.zeros(n, np.bool_), truncated, info

    @property
    def w_face(self) -> np.ndarray:
        """Every user's current face weight (a copy; ``w_speech = 1 - w_face``)."""
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before reading the weights")
        return self._w_table[self._state].copy()

    @property
    def pilot_lengths(self) -> np.ndarray:
        """The number of interactions of every user's current pilot (a copy)."""
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before reading the pilot lengths")
        return self._len.copy()

    @property
    def stream_seeds(self) -> np.ndarray:
        """Every user's current stream seed (a copy)."""
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before reading the stream seeds")
        return self._seeds.copy()

    def __repr__(self) -> str:
        return f"PersonalizationVectorEnv(num_envs={self.num_envs}, fusion={self.fusion!r})"

    # ---- pilots -------------------------------------------------------------------------------

    def _start(self, rows: np.ndarray, seeds: np.ndarray) -> None:
        """Start a new pilot for each user in ``rows`` on stream seed ``seeds[j]``."""
        streams = [self._draw(int(i), int(s)) for i, s in zip(rows, seeds, strict=True)]
        longest = max(len(st) for st in streams)
        if max(int(st.pilot_day[-1]) for st in streams) >= 2**15:
            raise ValueError("a pilot longer than 32,767 days: the vector env stores days as int16")
        n = self.num_envs
        if not self._started:
            self._alloc(longest)
            self._len = np.ones(n, np.int64)
            self._seeds = np.zeros(n, np.int64)
            self._t = np.zeros(n, np.int64)
            self._state = np.zeros(n, np.int64)
            self._history = np.full((n, self.k), NO_EMOTION, np.int64)
            self._engagement = np.ones(n)
            self._rt_z, self._eng_z = _RunningZ(n), _RunningZ(n)
            self._last_explicit = np.zeros(n, np.int64)
            self._last_rt = np.zeros(n)
            self._last_engagement = np.zeros(n)
            self._prev_done = np.zeros(n, np.bool_)
            self._started = True
        elif longest > self._T:
            self._alloc(max(longest, self._T + self._T // 4))
        info, dice = self._info, self._dice
        pend_conf = self._pend_conf.reshape(n, self._T)
        pend_corr = self._pend_corr.reshape(n, self._T)
        face_rows, speech_rows = len(self._face_ext) - 1, len(self._speech_ext) - 1
        for i, st in zip(rows, streams, strict=True):
            m = len(st)
            rec = info[i]
            rec["face"][:m] = np.where(st.face_present, st.face_row, face_rows)
            rec["speech"][:m] = np.where(st.speech_present, st.speech_row, speech_rows)
            rec["face_raw"][:m] = st.face_row
            rec["speech_raw"][:m] = st.speech_row
            rec["deliver_step"][:m] = st.deliver_step
            rec["day"][:m] = st.pilot_day
            rec["week"][:m] = st.week
            rec["label"][:m] = st.label
            rec["noise_offset"][:m] = st.noise_offset
            rec["face_present"][:m] = st.face_present
            rec["speech_present"][:m] = st.speech_present
            rec["hour"][:m] = st.hour
            rec[m:] = rec[m - 1]
            rec = dice[i]
            for name in _DICE.names:
                rec[name][:m] = getattr(st, name)
            rec[m:] = rec[m - 1]
            pend_conf[i] = 0
            pend_corr[i] = 0
        self._len[rows] = [len(st) for st in streams]
        self._seeds[rows] = seeds
        self._t[rows] = 0
        self._state[rows] = self._w_index[self._w0]
        self._history[rows] = NO_EMOTION
        self._engagement[rows] = 1.0
        self._rt_z.clear(rows)
        self._eng_z.clear(rows)
        self._last_explicit[rows] = FEEDBACK_NONE
        self._last_rt[rows] = 0.0
        self._last_engagement[rows] = 0.0
        self._prev_done[rows] = False

    def _draw(self, i: int, seed: int) -> Stream:
        st = draw_stream(self.profiles[i], self.pool, seed)
        if len(st) == 0:
            raise ValueError(
                f"user {st.user_id} has no interactions with stream seed {seed} "
                "(a pilot too short or a compliance too low): lengthen its schedule"
            )
        return st

    def _alloc(self, T: int) -> None:
        """(Re)allocate the per-interaction tables for pilots of up to ``T`` interactions."""
        n = self.num_envs
        info = np.zeros((n, T), _INFO)
        dice = np.zeros((n, T), _DICE)
        pend_conf = np.zeros((n, T), np.int32)
        pend_corr = np.zeros((n, T), np.int32)
        if self._started:
            old = self._T
            info[:, :old] = self._info
            info[:, old:] = self._info[:, old - 1 : old]
            dice[:, :old] = self._dice
            dice[:, old:] = self._dice[:, old - 1 : old]
            pend_conf[:, :old] = self._pend_conf.reshape(n, old)
            pend_corr[:, :old] = self._pend_corr.reshape(n, old)
        self._T = T
        self._info, self._dice = info, dice
        self._info_records = info.reshape(-1).view(_RECORD)
        self._dice_records = dice.reshape(-1).view(_RECORD)
        self._pend_conf, self._pend_corr = pend_conf.reshape(-1), pend_corr.reshape(-1)
        self._offsets = self._rows * T

    # ---- one interaction ----------------------------------------------------------------------

    def _observe(self) -> dict[str, np.ndarray]:
        """Gather every user's current interaction and build the observation (fused at the
        current weight), as the single env's ``_obs``; a finished pilot shows its last one."""
        self._tc = np.minimum(self._t, self._len - 1)
        self._flat = self._offsets + self._tc
        gi = self._gi = self._info_records.take(self._flat).view(_INFO)
        self._gd = self._dice_records.take(self._flat).view(_DICE)
        face, speech = gi["face"], gi["speech"]
        a = self._arrays
        if self.fusion == "feature":
            # the single env's hidden = (b1 + p_speech) + w·(p_face - p_speech), in float64, an
            # absent modality gathering the zero row ("raise" would buffer out: "clip" is faster)
            np.take(self._face_ext, face, axis=0, out=self._diff, mode="clip")
            np.take(self._speech_ext, speech, axis=0, out=self._base, mode="clip")
            np.subtract(self._diff, self._base, out=self._diff)
            np.add(a.b1, self._base, out=self._base)
        else:
            self._fp = gi["face_present"].astype(np.float64)
            self._sp = gi["speech_present"].astype(np.float64)
            self._face_probs = a.face_probs.take(gi["face_raw"], axis=0)
            self._speech_probs = a.speech_probs.take(gi["speech_raw"], axis=0)
        state = self._state
        fused = self._obs_probs = self._fused(self._w_table[state])
        return {
            "face": self._face_obs.take(face, axis=0),
            "speech": self._speech_obs.take(speech, axis=0),
            "fused": fused.astype(np.float32),
            "weights": self._w_pairs.take(state, axis=0),
            "history": self._history.copy(),
            "explicit": self._last_explicit.copy(),
            "response_time": self._last_rt.astype(np.float32)[:, None],
            "engagement": self._last_engagement.astype(np.float32)[:, None],
            "present": np.stack([gi["face_present"], gi["speech_present"]], axis=1),
        }

    def _predict(self, w: np.ndarray, moved: np.ndarray) -> np.ndarray:
        """Every user's prediction (argmax of the fused probabilities) at face weights ``w``;
        ``moved`` says whose weight changed since the last observation."""
        if self.fusion != "feature":
            return self._fused(w).argmax(axis=1)
        k = int(np.count_nonzero(moved))
        if 2 * k > self.num_envs:
            # the argmax of the logits: the softmax keeps their order (it could only tie two logits
            # within an ulp of each other, which the single env's own rounding does not order either)
            return self._logits(w).argmax(axis=1)
        # few weights moved (a settled policy): the observation's probabilities serve the others,
        # as in the single env
        pred = self._obs_probs.argmax(axis=1)
        if k:
            rows = np.flatnonzero(moved)
            h = self._diff[rows]
            h *= w[rows, None]
            h += self._base[rows]
            np.maximum(h, 0.0, out=h)
            z = h @ self._arrays.W2
            z += self._arrays.b2
            pred[rows] = z.argmax(axis=1)
        return pred

    def _logits(self, w: np.ndarray) -> np.ndarray:
        """The fusion head's logits (N, 6) at face weights ``w`` (feature fusion)."""
        a, h, z = self._arrays, self._hidden, self._z
        np.multiply(w[:, None], self._diff, out=h)
        np.add(self._base, h, out=h)
        np.maximum(h, 0.0, out=h)
        np.matmul(h, a.W2, out=z)
        np.add(z, a.b2, out=z)
        return z

    def _fused(self, w: np.ndarray) -> np.ndarray:
        """Fused probabilities (N, 6) of every user's current interaction at face weights ``w``."""
        if self.fusion == "feature":
            z = self._logits(w)
            # the single env's softmax in Python floats: m = max(z); e = exp(z - m); e / sum(e),
            # the sum from left to right
            m = np.maximum(z[:, 0], z[:, 1])
            for j in range(2, z.shape[1]):
                np.maximum(m, z[:, j], out=m)
            e = np.exp(z - m[:, None])
            total = e[:, 0] + e[:, 1]
            for j in range(2, e.shape[1]):
                total += e[:, j]
            probs = e / total[:, None]
            ok = np.isfinite(total)
        else:
            probs = fuse(
                self.fusion,
                self._arrays,
                self._face_probs,
                self._speech_probs,
                self._face_probs,
                self._speech_probs,
                self._fp,
                self._sp,
                w,
            )
            ok = np.isfinite(probs).all(axis=1)
        if not ok.all():
            i = int(np.argmin(ok))
            raise ValueError(
                f"user {self.user_ids[i]}, interaction {int(self._tc[i])}: the fused prediction holds NaN or "
                "inf (a pool row is broken); rebuild the user pool with `make pool`"
            )
        return probs

    def _reward(
        self,
        confirmations: np.ndarray,
        corrections: np.ndarray,
        rt_z: np.ndarray,
        eng_z: np.ndarray,
        correct: np.ndarray,
    ) -> np.ndarray:
        signal = RewardSignal(
            confirmations, corrections, rt_z, eng_z, correct if self._needs_truth else None
        )
        reward = np.asarray(self.reward_fn(signal), np.float64)
        if reward.shape != (self.num_envs,):
            if reward.ndim:
                raise ValueError(
                    f"the reward function returned shape {reward.shape}: expected ({self.num_envs},), one reward "
                    "per user (it is called with a RewardSignal of arrays)"
                )
            reward = np.full(self.num_envs, float(reward))
        elif reward.base is not None or not reward.flags.writeable:
            reward = reward.copy()
        bad = ~np.isfinite(reward)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"the reward function returned {reward[i]!r} for user {i} ({RewardSignal(*(f[i] if f is not None else None for f in signal))}): "
                "it must return finite numbers"
            )
        return reward

    def _check_actions(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions)
        n, k = self.num_envs, len(self._incs)
        if a.shape != (n,):
            raise ValueError(f"actions has shape {a.shape}: expected ({n},), one action per user")
        if a.dtype.kind not in "iu":
            raise ValueError(f"actions has dtype {a.dtype}: expected integers in 0..{k - 1}")
        bad = (a < 0) | (a >= k)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"actions[{i}] = {a[i].item()!r} is invalid: expected an integer in 0..{k - 1} "
                f"(weight changes {self.increments.tolist()})"
            )
        return a

    # ---- face weights: a lazily grown transition table (the single env's arithmetic, exactly) ----

    def _w_state(self, w: float) -> int:
        s = self._w_index.get(w)
        if s is None:
            s = self._w_index[w] = len(self._w_values)
            self._w_values.append(w)
            if s >= len(self._next):
                grown = np.full((max(16, 2 * len(self._next)), len(self._incs)), -1, np.int64)
                grown[: len(self._next)] = self._next
                self._next = grown
            self._w_table = np.array(self._w_values)
            self._w_pairs = np.array([[v, 1.0 - v] for v in self._w_values], np.float32)
        return s

    def _fill_next(self, a: np.ndarray) -> np.ndarray:
        """Fill the transitions this step needs that are not known yet, then look them up."""
        for s in np.unique(self._state[self._next[self._state, a] < 0]).tolist():
            w = self._w_values[s]
            for j, inc in enumerate(self._incs):
                self._next[s, j] = self._w_state(min(1.0, max(0.0, round(w + inc, 12))))
        return self._next[self._state, a]

    def _reset_info(self, rows: np.ndarray) -> dict[str, Any]:
        mask = np.zeros(self.num_envs, np.bool_)
        mask[rows] = True
        info: dict[str, Any] = {
            "step": self._tc.copy(),
            "day": self._gi["day"].astype(np.int64),
            "week": self._gi["week"].astype(np.int64),
            "stream_seed": self._seeds.copy(),
        }
        for key in list(info):
            info[f"_{key}"] = mask
        return info


class _RunningZ:
    """:class:`mer_gym.envs.reward.RunningZ` for N users (arrays (N,)), the same arithmetic."""

    def __init__(self, n: int) -> None:
        self.n = np.zeros(n, np.int64)
        self.mean = np.zeros(n)
        self.m2 = np.zeros(n)

    def clear(self, rows: np.ndarray) -> None:
        self.n[rows] = 0
        self.mean[rows] = 0.0
        self.m2[rows] = 0.0

    def update(self, x: np.ndarray) -> np.ndarray:
        n, mean = self.n, self.mean
        ready = n >= 3
        # sd = sqrt(m2 / (n - 1)), as RunningZ (math.sqrt and np.sqrt are both correctly rounded)
        sd = np.sqrt(self.m2 / np.maximum(n - 1, 1))
        ok = ready & (sd > 0)
        z = np.where(ok, (x - mean) / np.where(ok, sd, 1.0), 0.0)
        n += 1
        d = x - mean
        mean += d / n
        self.m2 += d * (x - mean)
        return z
