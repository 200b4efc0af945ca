"""Reading the action out of a model's response."""

from __future__ import annotations

import re

ACTION_MARKER = re.compile(r"action\s*:", re.IGNORECASE)
THOUGHT_MARKER = re.compile(r"thought\s*:", re.IGNORECASE)
WRAPPERS = "`'\"*[]"
MAX_ACTION_CHARS = 500

NO_ACTION_OBSERVATION = (
    'Your response had no action. Answer in the format "Thought: <your thoughts> Action: <one action>".'
)


def parse_action(response: str) -> str | None:
    """The action in ``response``: the first non-empty line after the last ``Action:`` (any case), with
    surrounding quotes, backticks, brackets and a final period stripped. A response without ``Action:``
    that is a single line and no ``Thought:`` is taken as the action itself (small models often answer
    with the bare command). ``None`` when no action can be read."""
    markers = list(ACTION_MARKER.finditer(response))
    if markers:
        tail = response[markers[-1].end():]
    elif len(lines := [line for line in response.splitlines() if line.strip()]) == 1 and not THOUGHT_MARKER.search(
        response
    ):
        tail = lines[0]
    else:
        return None
    line = next((line for line in tail.splitlines() if line.strip()), "")
    action = " ".join(line.split()).strip(WRAPPERS + " ").removesuffix(".").strip(WRAPPERS + " ")
    return action[:MAX_ACTION_CHARS] or None
