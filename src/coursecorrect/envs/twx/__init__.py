"""TextWorld-Express: eight fast text games through the ``textworld-express`` package (Java)."""

from coursecorrect.envs.twx.env import GAMES, TextWorldExpressEnv

__all__ = ["GAMES", "TextWorldExpressEnv"]
