"""RISE: multi-turn "try again" rollouts on math problems, reward-weighted training data, turn-wise evaluation.

Stages: :mod:`~coursecorrect.rise.collect` (rollouts with best-of-N or a teacher per turn) →
:mod:`~coursecorrect.rise.data` (one weighted example per kept turn) → the shared SFT trainer →
:mod:`~coursecorrect.rise.evaluate` (sequential and parallel sampling, m1@t1, m5@t1, m1@t5, p1@t5) →
:mod:`~coursecorrect.rise.run` (iterations, resume, report).
"""
