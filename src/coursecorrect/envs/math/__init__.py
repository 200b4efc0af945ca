"""Math word problems (GSM8K, MATH) as multi-turn "try again" tasks, with their data shipped in the package."""

from coursecorrect.envs.math.env import GSM8KEnv, MATHEnv, MathEnv
from coursecorrect.envs.math.grading import gsm8k_correct, last_boxed, math_correct, normalize_math

__all__ = ["GSM8KEnv", "MATHEnv", "MathEnv", "gsm8k_correct", "last_boxed", "math_correct", "normalize_math"]
