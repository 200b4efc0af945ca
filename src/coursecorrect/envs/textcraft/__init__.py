"""TextCraft, native: AgentGym's Minecraft crafting env with its recipe data shipped in the package."""

from coursecorrect.envs.textcraft.env import TextCraftEnv
from coursecorrect.envs.textcraft.recipes import RecipeBook
from coursecorrect.envs.textcraft.solver import solve

__all__ = ["RecipeBook", "TextCraftEnv", "solve"]
