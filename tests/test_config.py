from dataclasses import dataclass, field

import pytest

from mer_gym.config import ConfigError, check_interval, check_range, from_mapping


@dataclass(frozen=True)
class Inner:
    low: float = 0.0
    span: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        check_interval("span", self.span, 0.0, 1.0)


@dataclass(frozen=True)
class Outer:
    name: str
    count: int = 1
    inner: Inner = field(default_factory=Inner)
    maybe: float | None = None


def test_builds_nested_dataclasses_and_converts_lists_to_tuples():
    cfg = from_mapping(Outer, {"name": "x", "inner": {"low": 1, "span": [0.2, 0.4]}}, where="t")
    assert cfg.inner == Inner(low=1.0, span=(0.2, 0.4))
    assert isinstance(cfg.inner.low, float)
    assert cfg.maybe is None


def test_unknown_key_names_the_key_the_place_and_the_allowed_keys():
    with pytest.raises(ConfigError, match=r"t.inner: unknown key\(s\) 'hgih'; allowed keys for Inner: low, span"):
        from_mapping(Outer, {"name": "x", "inner": {"hgih": 1}}, where="t")


def test_invalid_value_is_reported_with_its_location():
    with pytest.raises(ConfigError, match=r"t.inner: span = \[0.5, 0.1\]"):
        from_mapping(Outer, {"name": "x", "inner": {"span": [0.5, 0.1]}}, where="t")
    with pytest.raises(ConfigError, match="expected 2 values"):
        from_mapping(Outer, {"name": "x", "inner": {"span": [0.1]}}, where="t")
    with pytest.raises(ConfigError, match="expected a mapping"):
        from_mapping(Outer, ["name"], where="t")
    with pytest.raises(ConfigError, match="missing 1 required"):
        from_mapping(Outer, {}, where="t")


def test_range_checks_reject_nan():
    check_range("x", 0.5, 0.0, 1.0)
    with pytest.raises(ConfigError, match="x = nan"):
        check_range("x", float("nan"), 0.0, 1.0)
