"""Look at a search tree: in the terminal (rich) or as a self-contained HTML page.

Good leaves (terminal, score >= 1) are green, bad leaves (terminal, lower score) red; rollout nodes are
marked "R". The HTML page nests ``<details>`` elements (expand/collapse without any script; a few lines of
inline JS add expand-all/collapse-all buttons and a node count). All text from the model or the env is
escaped.
"""

from __future__ import annotations

import html

from rich.markup import escape as rich_escape
from rich.tree import Tree as RichTree

from coursecorrect.data.tree import Node, Tree
from coursecorrect.search.stats import tree_stats

EXCERPT = 160


def _one_line(text: str | None, limit: int = EXCERPT) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(node: Node) -> str:
    """'good' / 'bad' for terminal leaves, 'terminal' for other terminal nodes, '' otherwise."""
    if node.terminal and node.is_leaf:
        return "good" if node.success else "bad"
    return "terminal" if node.terminal else ""


def _stats_line(node: Node) -> str:
    text = f"Q={node.q:.2f} N={node.visits}"
    if node.terminal:
        text += f" score={node.score:g}"
    return text


# -- terminal --------------------------------------------------------------------------------------------


def _rich_label(node: Node) -> str:
    if node.response is None:
        return f"[bold]root[/bold] #{node.id}  {_stats_line(node)}"
    action = rich_escape(_one_line(node.action, 80)) if node.action is not None else "[italic]no action[/italic]"
    style = {"good": "bold green", "bad": "red", "terminal": "yellow"}.get(_kind(node), "")
    tags = ("R " if node.rollout else "") + f"#{node.id} d{node.depth}"
    label = f"{tags}  {action} → {rich_escape(_one_line(node.observation, 80))}  [dim]{_stats_line(node)}[/dim]"
    return f"[{style}]{label}[/{style}]" if style else label


def render_tree(tree: Tree, max_depth: int | None = None) -> RichTree:
    """A rich renderable of ``tree`` down to ``max_depth`` (all levels when None)."""
    stats = tree_stats([tree])
    title = (
        f"[bold]{rich_escape(tree.env)} task {tree.task_id}[/bold]  {stats['nodes']} nodes, "
        f"{stats['terminal_leaves']} terminal leaves {stats['leaf_score_histogram']}"
    )
    top = RichTree(title)
    stack = [(top.add(_rich_label(tree.root)), tree.root)]
    while stack:
        branch, node = stack.pop()
        if max_depth is not None and node.depth >= max_depth:
            if node.children:
                branch.add(f"[dim]… {sum(1 for _ in node.walk()) - 1} more nodes[/dim]")
            continue
        for child in node.children:
            stack.append((branch.add(_rich_label(child)), child))
    return top


# -- HTML ------------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
details{margin-left:1.2em;border-left:1px solid #ccc;padding-left:.5em}
summary{cursor:pointer;padding:2px 0}
.node{margin:2px 0}
.leaf{margin-left:1.2em;padding:2px .5em;border-left:4px solid #bbb}
.good{background:#e3f7e3;border-left-color:#2a2}
.bad{background:#fbe4e4;border-left-color:#c33}
.terminal>summary{color:#a60}
.rollout>summary .act,.rollout .act{font-style:italic}
.act{font-family:monospace;font-weight:600}
.stats{color:#666;font-size:12px;margin-left:.6em}
.tag{font-size:11px;background:#eee;border-radius:3px;padding:0 .3em;margin-right:.3em}
pre{white-space:pre-wrap;background:#f6f6f6;margin:.2em 0 .4em 1.2em;padding:.3em;font-size:12px;max-width:110ch}
"""

_JS = """
function setAll(open){document.querySelectorAll('details').forEach(d=>d.open=open);}
document.getElementById('count').textContent=document.querySelectorAll('[data-node]').length+' nodes rendered';
"""


def _html_node(node: Node, parts: list[str], max_depth: int | None) -> None:
    esc = html.escape
    cut = max_depth is not None and node.depth >= max_depth
    leaf = not node.children or cut
    flags = ("node", "leaf" if leaf else "", _kind(node), "rollout" if node.rollout else "")
    classes = " ".join(c for c in flags if c)
    if node.response is None:
        head = f"<span class=act>root</span> <span class=tag>#{node.id}</span>"
    else:
        action = esc(node.action) if node.action is not None else "<i>no action</i>"
        tags = f"<span class=tag>#{node.id} d{node.depth}</span>" + ("<span class=tag>R</span>" if node.rollout else "")
        head = f"{tags}<span class=act>{action}</span> → {esc(_one_line(node.observation, 100))}"
    head += f"<span class=stats>{esc(_stats_line(node))}</span>"
    body = ""
    if node.response is not None:
        body = (
            f"<pre class=response>{esc(_one_line(node.response, 600))}</pre>"
            f"<pre class=obs>{esc(node.observation)}</pre>"
        )
    attrs = f'class="{classes}" data-node="{node.id}" data-visits="{node.visits}" data-score="{node.score:g}"'
    if leaf:
        extra = f"<span class=stats>… {sum(1 for _ in node.walk()) - 1} more nodes</span>" if node.children else ""
        parts.append(f"<details {attrs}><summary>{head}{extra}</summary>{body}</details>")
        return
    opened = " open" if node.depth < 2 else ""
    parts.append(f"<details {attrs}{opened}><summary>{head}</summary>{body}")
    for child in node.children:
        _html_node(child, parts, max_depth)
    parts.append("</details>")


def tree_html(tree: Tree, max_depth: int | None = None) -> str:
    """A self-contained HTML page showing ``tree`` (no external resources)."""
    esc = html.escape
    stats = tree_stats([tree])
    parts: list[str] = []
    _html_node(tree.root, parts, max_depth)
    intro = "".join(
        f"<details><summary>{esc(m.role)}: {esc(_one_line(m.content, 80))}</summary>"
        f"<pre>{esc(m.content)}</pre></details>"
        for m in tree.root_messages
    )
    title = f"{tree.env} task {tree.task_id}"
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1>"
        f"<p id=summary>{esc(' · '.join(f'{key}: {value}' for key, value in stats.items()))}</p>"
        "<p><button onclick='setAll(true)'>expand all</button> <button onclick='setAll(false)'>collapse all</button>"
        " <span id=count></span></p>"
        f"<h2>Task</h2>{intro}<h2>Tree</h2><div id=tree>{''.join(parts)}</div>"
        f"<script>{_JS}</script></body></html>\n"
    )
