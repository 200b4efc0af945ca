"""Search trees: nodes of (response, action, observation), and one JSON file per task.

A tree file holds the task's root messages (instruction, "Ok.", first observation) and the nested nodes.
The conversation that leads to any node is the root messages followed, for every node on the path from the
root, by its response (assistant turn) and its observation (user turn) — see :meth:`Tree.messages`.

    {"format": 1, "env": "textcraft", "task_id": 12, "meta": {...},
     "root_messages": [{"role": "user", "content": "...", "loss": false}, ...],
     "root": {"id": 0, "response": null, ..., "children": [{"id": 1, ...}, ...]}}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coursecorrect.data.conversation import Message
from coursecorrect.errors import CourseCorrectError
from coursecorrect.io import atomic_write_json

FORMAT = 1
SUCCESS = 1.0  # a terminal leaf scoring at least this is a success ("good" leaf); any other is a failure


class TreeFileError(CourseCorrectError):
    """A tree file that is missing or not a valid tree."""


@dataclass(eq=False)
class Node:
    """One state of a search tree: the response that led here, its action and the env's observation.

    ``action`` is ``None`` when no action could be parsed (the env was not stepped). ``reward`` is the env's
    reward after the action; ``score`` the value a terminal node backs up (the reward when the env ended the
    episode, else 0). ``visits`` / ``value`` are MCTS statistics (Q = value / visits). ``rollout`` marks nodes
    created by a simulation rather than by expansion; ``expanded`` nodes had their children sampled.
    """

    id: int
    response: str | None
    action: str | None
    observation: str
    depth: int
    visits: int = 0
    value: float = 0.0
    reward: float = 0.0
    score: float = 0.0
    done: bool = False
    terminal: bool = False
    expanded: bool = False
    rollout: bool = False
    completion_tokens: int = 0
    children: list[Node] = field(default_factory=list)
    parent: Node | None = field(default=None, repr=False)

    @property
    def q(self) -> float:
        """Mean backed-up value (0 when unvisited)."""
        return self.value / self.visits if self.visits else 0.0

    @property
    def is_leaf(self) -> bool:
        return not self.children

    @property
    def success(self) -> bool:
        """A terminal node that reached the goal."""
        return self.terminal and self.score >= SUCCESS

    def child_with_response(self, response: str) -> Node | None:
        return next((c for c in self.children if c.response == response), None)

    def add(self, child: Node) -> Node:
        child.parent = self
        self.children.append(child)
        return child

    def path(self) -> list[Node]:
        """The nodes from the root to this one, both included."""
        nodes, node = [], self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def walk(self) -> Iterator[Node]:
        """This node and all its descendants, depth first, children in order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "response": self.response, "action": self.action, "observation": self.observation,
            "depth": self.depth, "visits": self.visits, "value": self.value, "reward": self.reward,
            "score": self.score, "done": self.done, "terminal": self.terminal, "expanded": self.expanded,
            "rollout": self.rollout, "completion_tokens": self.completion_tokens,
            "children": [c.to_dict() for c in self.children],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        # Iterative, so deep trees never hit Python's recursion limit.
        fields = {k: v for k, v in data.items() if k != "children"}
        root = cls(**fields)
        stack = [(root, data.get("children", []))]
        while stack:
            parent, children = stack.pop()
            for child_data in children:
                child = parent.add(cls(**{k: v for k, v in child_data.items() if k != "children"}))
                stack.append((child, child_data.get("children", [])))
        return root


@dataclass(eq=False)
class Tree:
    """The search tree of one task."""

    env: str
    task_id: int
    root_messages: list[Message]
    root: Node
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, env: str, task_id: int, root_messages: list[Message], meta: dict[str, Any] | None = None) -> Tree:
        """A tree with only its root; the root's observation is the task's first observation."""
        root = Node(id=0, response=None, action=None, observation=root_messages[-1].content, depth=0)
        return cls(env, task_id, list(root_messages), root, dict(meta or {}))

    def nodes(self) -> Iterator[Node]:
        """Every node, the root first, depth first."""
        return self.root.walk()

    def leaves(self) -> Iterator[Node]:
        """Nodes without children, depth first."""
        return (n for n in self.nodes() if n.is_leaf)

    def terminal_leaves(self) -> Iterator[Node]:
        """Finished trajectories: leaves that are terminal (their score is a real outcome)."""
        return (n for n in self.leaves() if n.terminal)

    def find(self, node_id: int) -> Node:
        """The node with id ``node_id`` (ids are unique in a tree; revision records name nodes by id).
        Raises ``KeyError`` when the tree has none."""
        for node in self.nodes():
            if node.id == node_id:
                return node
        raise KeyError(f"task {self.task_id}: no node {node_id}")

    def messages(self, node: Node) -> list[Message]:
        """The whole conversation up to and including ``node``'s observation (agent turns carry loss=True)."""
        messages = list(self.root_messages)
        for step in node.path()[1:]:
            messages.append(Message(role="assistant", content=step.response or "", loss=True))
            messages.append(Message(role="user", content=step.observation))
        return messages

    def actions(self, node: Node) -> list[str | None]:
        """The parsed actions from the root to ``node`` (None where no action was read)."""
        return [step.action for step in node.path()[1:]]

    def to_dict(self) -> dict[str, Any]:
        """The tree file's JSON (see the module's docstring)."""
        return {
            "format": FORMAT, "env": self.env, "task_id": self.task_id, "meta": self.meta,
            "root_messages": [m.model_dump(mode="json") for m in self.root_messages],
            "root": self.root.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "tree") -> Tree:
        """The tree of a tree file's JSON; raises :class:`TreeFileError`, naming ``source``, when it is not one."""
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"unsupported format {data.get('format')!r} (expected {FORMAT})")
            messages = [Message.model_validate(m) for m in data["root_messages"]]
            return cls(data["env"], int(data["task_id"]), messages, Node.from_dict(data["root"]), data.get("meta", {}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TreeFileError(f"{source}: not a valid tree file ({type(exc).__name__}: {exc})") from None

    def save(self, path: Path) -> None:
        """Write the tree atomically (readers see the old file or the whole new one)."""
        atomic_write_json(Path(path), self.to_dict(), indent=None)

    @classmethod
    def load(cls, path: Path) -> Tree:
        """Read a tree file; raises :class:`TreeFileError` when it is missing, not JSON or not a tree."""
        path = Path(path)
        if not path.is_file():
            raise TreeFileError(f"{path}: no such tree file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TreeFileError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise TreeFileError(f"{path}: not a valid tree file (top level is {type(data).__name__})")
        return cls.from_dict(data, source=str(path))


def tree_path(out_dir: Path, task_id: int) -> Path:
    """Where a collection run keeps the tree of ``task_id``."""
    return Path(out_dir) / "trees" / f"task_{task_id}.json"


def load_trees(path: Path) -> list[Tree]:
    """The trees of a run folder (``DIR/trees/task_*.json`` or ``DIR/task_*.json``), or one tree file,
    sorted by task id."""
    path = Path(path)
    if path.is_file():
        return [Tree.load(path)]
    if not path.is_dir():
        raise TreeFileError(f"{path}: no such file or folder")
    folder = path / "trees" if (path / "trees").is_dir() else path
    trees = [Tree.load(p) for p in folder.glob("task_*.json")]
    return sorted(trees, key=lambda t: t.task_id)


def trees_digest(path: Path) -> str:
    """SHA-256 over the tree files under ``path`` (names and bytes, in name order): equal digests mean
    byte-identical trees."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).rglob("task_*.json")):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()
