"""Math problems (GSM8K, MATH, reasoning-gym) as multi-turn "try again" tasks. GSM8K and MATH are read from
local JSONL files or the hub; no problem set ships with the package."""

from coursecorrect.envs.math.env import FEEDBACK, GSM8KEnv, MATHEnv, MathEnv
from coursecorrect.envs.math.grading import gsm8k_correct, last_boxed, math_correct, normalize_math
from coursecorrect.envs.math.reasoning_gym import ReasoningGymEnv

__all__ = [
    "FEEDBACK", "GSM8KEnv", "MATHEnv", "MathEnv", "ReasoningGymEnv",
    "gsm8k_correct", "last_boxed", "math_correct", "normalize_math",
]
