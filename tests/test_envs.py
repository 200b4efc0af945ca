"""The env protocol: registry, check_env over every registered env, replay snapshots, step bookkeeping."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from coursecorrect.cli import app
from coursecorrect.envs import ENVS, Env, EnvConfig, StepResult, make_env, register_env
from coursecorrect.envs.checks import check_env
from coursecorrect.errors import ConfigError, CourseCorrectError, EnvError, UnknownNameError


class CounterEnv(Env):
    """A tiny deterministic env: reach ``task_id + 2`` by typing ``inc``. It cannot copy its state."""

    name = "counter"

    def __init__(self, max_steps: int = 10) -> None:
        super().__init__(max_steps)
        self.value = self.target = 0
        self.resets = 0

    instruction = "Type inc until you reach the target."  # type: ignore[assignment]
    num_tasks = 4  # type: ignore[assignment]

    def task_ids(self, split: str) -> list[int]:
        return [0, 1] if split == "train" else [2, 3]

    def _reset(self, task_id: int) -> str:
        self.resets += 1
        self.value, self.target = 0, task_id + 2
        return f"reach {self.target}"

    def _step(self, action: str) -> StepResult:
        if action != "inc":
            return StepResult(f"unknown action {action[:20]!r}")
        self.value += 1
        return StepResult(f"value {self.value}", float(self.value == self.target), self.value == self.target)


@pytest.fixture
def counter_registered():
    register_env("counter", CounterEnv, overwrite=True)
    yield
    ENVS._targets.pop("counter", None)


@pytest.mark.parametrize("name", ENVS.names())
def test_every_registered_env_keeps_the_contract(name):
    with make_env(name) as env:
        check_env(env)


def test_custom_env_registration_and_check(counter_registered):
    env = EnvConfig(name="counter", max_steps=5).make()
    assert isinstance(env, CounterEnv) and env.max_steps == 5
    check_env(env)
    assert not env.supports_snapshot


def test_replay_snapshot_fallback():
    env = CounterEnv()
    env.reset(3)
    env.step("inc")
    env.step("inc")
    snap = env.snapshot()
    assert snap.state is None and snap.actions == ("inc", "inc")
    env.step("inc")
    resets = env.resets
    env.restore(snap)
    assert env.resets == resets + 1 and env.value == 2 and env.actions == ["inc", "inc"]
    assert env.step("inc").observation == "value 3"


def test_truncation_and_termination_are_kept_apart():
    env = CounterEnv(max_steps=2)
    env.reset(3)  # target 5: cannot be reached in 2 steps
    env.step("inc")
    result = env.step("inc")
    assert result.truncated and not result.terminated and result.done
    env = CounterEnv(max_steps=2)
    env.reset(0)  # target 2: reached on the last allowed step
    env.step("inc")
    result = env.step("inc")
    assert result.terminated and not result.truncated and result.reward == 1


def test_step_before_reset_and_non_str_actions():
    env = CounterEnv()
    with pytest.raises(EnvError, match="reset"):
        env.step("inc")
    env.reset(0)
    with pytest.raises(TypeError, match="str"):
        env.step(None)  # type: ignore[arg-type]


def test_registry_errors():
    with pytest.raises(UnknownNameError, match="Did you mean 'textcraft'"):
        make_env("textcraf")
    with pytest.raises(CourseCorrectError, match="already registered"):
        register_env("textcraft", CounterEnv)
    with pytest.raises(CourseCorrectError, match="module:Class"):
        register_env("nocolon", "just.a.module")
    register_env("not-an-env", "builtins:dict")
    try:
        with pytest.raises(CourseCorrectError, match="not a subclass of Env"):
            make_env("not-an-env")
    finally:
        ENVS._targets.pop("not-an-env")
    register_env("missing", "no.such.module:Env")
    try:
        with pytest.raises(CourseCorrectError, match="cannot load env 'missing'"):
            make_env("missing")
    finally:
        ENVS._targets.pop("missing")


def test_lazy_string_target(counter_registered):
    register_env("counter-lazy", f"{__name__}:CounterEnv")
    try:
        assert type(make_env("counter-lazy")) is CounterEnv
    finally:
        ENVS._targets.pop("counter-lazy")


def test_bad_env_options_name_the_env():
    with pytest.raises(ConfigError, match="env 'textcraft': bad options"):
        EnvConfig(options={"colour": "red"}).make()


class _LongPlanCounter(CounterEnv):
    """A counter whose expert wastes 5 actions first: task 2's plan takes 9 steps, task 3's 10 (over the limit)."""

    def __init__(self, max_steps: int = 9) -> None:
        super().__init__(max_steps)

    def expert_actions(self) -> list[str]:
        return ["noop"] * 5 + ["inc"] * (self.target - self.value)


def test_env_check_cuts_plans_at_the_step_limit():
    register_env("longplan", _LongPlanCounter, overwrite=True)
    try:
        result = CliRunner().invoke(app, ["env", "check", "longplan", "--split", "test"])
    finally:
        ENVS._targets.pop("longplan", None)
    assert result.exit_code == 1
    assert "the expert solved 1/2 tasks" in result.output and "unsolved task ids: [3]" in result.output
