"""Layered layout of a task DAG for the console's DAG view; pure, no Textual.

:func:`build_index` turns the plan's tasks (id and deps) into integer
adjacency and generations (longest path from a root: a task's generation is
one more than its deepest dependency's). It runs once per plan, O(V + E), and
the view keeps it; state changes never touch it.

:func:`layout` draws a node subset (the whole plan when small, else the
neighbourhood of the selected task) as columns, one per generation, left to
right:

- a task whose deps are all in earlier columns sits in the first column after
  its deepest dep (longest-path layering within the subset);
- an edge spanning several columns runs through "dummy" slots; one source's
  long edges share one chain of dummies and branch off where each target is,
  which keeps fan-outs from filling the page;
- rows are ordered by barycentre sweeps (fewer crossings), then each node
  moves down to its parents' mean row so chains stay straight;
- between two columns each source with a bend gets its own vertical track
  (greedy interval colouring: sources whose row spans do not overlap share
  one); cells collect up/down/left/right bits that become box characters
  (``─ │ ┌ ┐ └ ┘ ├ ┤ ┬ ┴ ┼``), so fan-in and fan-out merge cleanly.

The result (:class:`Drawing`) holds the edge text with blanks where nodes go;
the view overlays each node's state symbol, label and colour at paint time.
:class:`GenerationCounts` keeps tasks per generation per state for the
overview of big plans, updated in O(1) per state change.

Dependencies on ids that are not in the task list are ignored (the plan is
validated elsewhere); tasks left in a cycle go to one last column.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from core.events import TaskState

U, D, L, R = 1, 2, 4, 8
_BOX = {
    0: " ", L: "─", R: "─", L | R: "─", U: "│", D: "│", U | D: "│",
    R | D: "┌", L | D: "┐", R | U: "└", L | U: "┘", U | D | R: "├", U | D | L: "┤",
    L | R | D: "┬", L | R | U: "┴", U | D | L | R: "┼",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DagIndex:
    """A plan's graph as integers: node ``i`` is ``ids[i]`` (plan order)."""

    ids: tuple[str, ...]
    position: Mapping[str, int]
    parents: tuple[tuple[int, ...], ...]
    children: tuple[tuple[int, ...], ...]
    generation: tuple[int, ...]
    generations: tuple[tuple[int, ...], ...]
    """Nodes of each generation, in plan order."""


def build_index(tasks: Iterable[tuple[str, Sequence[str]]]) -> DagIndex:
    """Index tasks and compute their generations (Kahn's algorithm, longest path).

    Args:
        tasks: ``(id, deps)`` pairs in plan order; a repeated id keeps its first row.

    Returns:
        The :class:`DagIndex`.
    """
    ids: list[str] = []
    position: dict[str, int] = {}
    raw_deps: list[Sequence[str]] = []
    for task_id, deps in tasks:
        if task_id not in position:
            position[task_id] = len(ids)
            ids.append(task_id)
            raw_deps.append(deps)
    n = len(ids)
    parents = [tuple(dict.fromkeys(position[d] for d in deps if d in position)) for deps in raw_deps]
    kids: list[list[int]] = [[] for _ in range(n)]
    for v, ps in enumerate(parents):
        for p in ps:
            kids[p].append(v)
    indegree = [len(ps) for ps in parents]
    generation = [0] * n
    queue = deque(v for v in range(n) if indegree[v] == 0)
    done = 0
    while queue:
        v = queue.popleft()
        done += 1
        for c in kids[v]:
            generation[c] = max(generation[c], generation[v] + 1)
            indegree[c] -= 1
            if indegree[c] == 0:
                queue.append(c)
    if done < n:  # a cycle: park what is left after everything else
        last = max((generation[v] for v in range(n) if indegree[v] == 0), default=-1) + 1
        for v in range(n):
            if indegree[v]:
                generation[v] = last
    gens: list[list[int]] = [[] for _ in range(max(generation, default=-1) + 1)]
    for v in range(n):
        gens[generation[v]].append(v)
    return DagIndex(
        ids=tuple(ids),
        position=position,
        parents=tuple(parents),
        children=tuple(tuple(k) for k in kids),
        generation=tuple(generation),
        generations=tuple(tuple(g) for g in gens),
    )


@dataclass(slots=True)
class Drawing:
    """A laid-out subgraph: edge characters plus where each node's label goes."""

    node_width: int
    lines: list[str]
    """Edge text, one string per row, blank where labels go."""
    at: dict[int, tuple[int, int]]
    """Node → (x, y) of its label."""
    rows: list[list[int]]
    """Nodes whose label is on each row, left to right."""
    columns: list[list[int]]
    """Real nodes of each column, top to bottom (for keyboard moves)."""
    column_of: dict[int, int] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return max((len(line) for line in self.lines), default=0)

    @property
    def height(self) -> int:
        return len(self.lines)


def layout(index: DagIndex, nodes: Collection[int] | None = None, *, node_width: int = 16) -> Drawing:
    """Lay out the subgraph induced by ``nodes`` (all when ``None``).

    Args:
        index: the plan's :class:`DagIndex`.
        nodes: node numbers to draw.
        node_width: cells for each label (state symbol, space, name).

    Returns:
        The :class:`Drawing`.
    """
    members = set(range(len(index.ids)) if nodes is None else nodes)
    # Global generation order is a topological order, so one pass layers the subset.
    order = sorted(members, key=lambda v: (index.generation[v], v))
    layer: dict[int, int] = {}
    for v in order:
        layer[v] = max((layer[p] + 1 for p in index.parents[v] if p in layer), default=0)
    n_layers = max(layer.values(), default=-1) + 1
    # Slots: real nodes are >= 0, dummies < 0. succ/pred are slot edges between adjacent layers.
    cols: list[list[int]] = [[] for _ in range(n_layers)]
    for v in order:
        cols[layer[v]].append(v)
    succ: dict[int, list[int]] = {v: [] for v in order}
    pred: dict[int, list[int]] = {v: [] for v in order}
    dummy_layer: dict[int, int] = {}
    for u in order:
        # Only forward edges: inside a cycle (invalid plan) the back edge is not drawn.
        targets = [c for c in index.children[u] if c in members and layer[c] > layer[u]]
        chain = u
        reach = max((layer[c] for c in targets), default=0)
        by_layer: dict[int, int] = {layer[u]: u}
        for lyr in range(layer[u] + 1, reach):  # one shared dummy chain per source
            d = -1 - len(dummy_layer)
            dummy_layer[d] = lyr
            cols[lyr].append(d)
            succ[chain].append(d)
            succ[d], pred[d] = [], [chain]
            by_layer[lyr] = chain = d
        for c in targets:
            src = by_layer[layer[c] - 1]
            succ[src].append(c)
            pred[c].append(src)
    _order_rows(cols, succ, pred)
    ys = _assign_rows(cols, pred)
    return _draw(index, cols, succ, ys, node_width)


def _order_rows(cols: list[list[int]], succ: dict[int, list[int]], pred: dict[int, list[int]]) -> None:
    # Two down-and-up barycentre sweeps: the classic Sugiyama crossing reduction,
    # cheap enough (n log n per sweep) for the few hundred slots we ever draw.
    for _ in range(2):
        for sweep, links in ((range(1, len(cols)), pred), (range(len(cols) - 2, -1, -1), succ)):
            for i in sweep:
                ref = {v: k for k, v in enumerate(cols[i - 1 if links is pred else i + 1])}
                here = {v: k for k, v in enumerate(cols[i])}

                def key(
                    v: int,
                    ref: dict[int, int] = ref,
                    here: dict[int, int] = here,
                    links: dict[int, list[int]] = links,
                ) -> float:
                    near = [ref[w] for w in links[v] if w in ref]
                    return sum(near) / len(near) if near else float(here[v])

                cols[i].sort(key=key)


def _assign_rows(cols: list[list[int]], pred: dict[int, list[int]]) -> dict[int, int]:
    # Each slot goes as near its parents' mean row as the slots above it allow,
    # so chains come out as straight lines.
    ys: dict[int, int] = {}
    for col in cols:
        floor = 0
        for v in col:
            near = [ys[w] for w in pred[v] if w in ys]
            want = round(sum(near) / len(near)) if near else floor
            ys[v] = max(want, floor)
            floor = ys[v] + 1
    return ys


def _draw(
    index: DagIndex, cols: list[list[int]], succ: dict[int, list[int]], ys: dict[int, int], w: int
) -> Drawing:
    height = max(ys.values(), default=-1) + 1
    # Tracks per gap first: they decide where each column starts.
    gaps = [_tracks(col, succ, ys) for col in cols[:-1]]
    xs: list[int] = []
    x = 0
    for i in range(len(cols)):
        xs.append(x)
        x += w + (max(max(gaps[i].values(), default=-1) + 1, 1) + 2 if i < len(gaps) else 0)
    mask = [[0] * x for _ in range(height)]

    def hline(y: int, xa: int, xb: int) -> None:
        for cx in range(xa, xb + 1):
            mask[y][cx] |= (L if cx > xa else 0) | (R if cx < xb else 0)

    def vline(cx: int, ya: int, yb: int) -> None:
        for cy in range(ya, yb + 1):
            mask[cy][cx] |= (U if cy > ya else 0) | (D if cy < yb else 0)

    for i, col in enumerate(cols):
        for v in col:
            if v < 0:  # a dummy is a straight line through its column
                hline(ys[v], xs[i], xs[i] + w - 1)
                mask[ys[v]][xs[i]] |= L
                mask[ys[v]][xs[i] + w - 1] |= R
        if i == len(cols) - 1:
            continue
        start, end = xs[i] + w, xs[i + 1] - 1
        for v in col:
            if not succ[v]:
                continue
            mask[ys[v]][start] |= L
            t = gaps[i].get(v)
            if t is None:  # every target on the source's row: one straight line
                hline(ys[v], start, end)
                mask[ys[v]][end] |= R
                continue
            tx = start + 1 + t
            hline(ys[v], start, tx)
            rows = [ys[c] for c in succ[v]]
            vline(tx, min(ys[v], *rows), max(ys[v], *rows))
            for y in rows:
                hline(y, tx, end)
                mask[y][end] |= R
    lines = ["".join(_BOX[m] for m in row) for row in mask]
    at: dict[int, tuple[int, int]] = {}
    by_row: list[list[int]] = [[] for _ in range(height)]
    columns: list[list[int]] = []
    column_of: dict[int, int] = {}
    for i, col in enumerate(cols):
        real = [v for v in col if v >= 0]
        columns.append(real)
        for v in real:
            at[v] = (xs[i], ys[v])
            by_row[ys[v]].append(v)
            column_of[v] = i
            line = lines[ys[v]]
            lines[ys[v]] = line[: xs[i]] + " " * w + line[xs[i] + w :]
    return Drawing(node_width=w, lines=lines, at=at, rows=by_row, columns=columns, column_of=column_of)


def _tracks(col: list[int], succ: dict[int, list[int]], ys: dict[int, int]) -> dict[int, int]:
    """Give each bending source of one column a vertical track in the gap after it.

    A source's stub (left part of its row) and the edges arriving on that row
    from other sources (right part) share the row, so a source must sit left
    of every other source that targets its row, or the two lines would merge
    and read as an edge that does not exist. Sources are placed in that order
    (Kahn; a cycle of such constraints is broken at the topmost span), each on
    the leftmost track right of its constraints whose rows are free.
    """
    spans: dict[int, tuple[int, int]] = {}
    for v in col:
        rows = [ys[v], *(ys[c] for c in succ[v])]
        if succ[v] and min(rows) != max(rows):
            spans[v] = (min(rows), max(rows))
    at_row = {ys[v]: v for v in spans}
    left_of: dict[int, set[int]] = {v: set() for v in spans}  # v -> sources that must be left of v
    for v in spans:
        for c in succ[v]:
            other = at_row.get(ys[c])
            if other is not None and other != v:
                left_of[v].add(other)
    waiting = {v: set(left) for v, left in left_of.items()}
    placed: dict[int, int] = {}
    used: list[list[tuple[int, int]]] = []  # rows taken on each track
    while waiting:
        ready = [v for v, left in waiting.items() if not left] or list(waiting)
        v = min(ready, key=lambda u: spans[u])
        lo, hi = spans[v]
        t = max((placed[u] + 1 for u in left_of[v] if u in placed), default=0)
        while t < len(used) and any(not (b < lo or a > hi) for a, b in used[t]):
            t += 1
        if t == len(used):
            used.append([])
        used[t].append((lo, hi))
        placed[v] = t
        del waiting[v]
        for left in waiting.values():
            left.discard(v)
    return placed


def neighbourhood(index: DagIndex, node: int, *, depth: int = 2, limit: int = 24) -> set[int]:
    """The node plus its ancestors and descendants up to ``depth`` steps, nearest first.

    Args:
        index: the plan's :class:`DagIndex`.
        node: the centre.
        depth: how many dependency steps to follow each way.
        limit: most nodes kept on each side.

    Returns:
        The node set (drawable with :func:`layout`).
    """
    keep = {node}
    for links in (index.parents, index.children):
        frontier = [node]
        side: list[int] = []
        for _ in range(depth):
            frontier = [w for v in frontier for w in links[v] if w not in keep and w not in side]
            side.extend(dict.fromkeys(frontier))
        keep.update(side[:limit])
    return keep


class GenerationCounts:
    """Tasks per generation per state, kept current in O(1) per change."""

    def __init__(self, index: DagIndex) -> None:
        self._generation = index.generation
        self.per_generation: list[Counter[TaskState]] = [
            Counter({TaskState.PENDING: len(g)}) for g in index.generations
        ]
        self._state = [TaskState.PENDING] * len(index.ids)

    def set(self, node: int, state: TaskState) -> bool:
        """Record ``node``'s state; True when it changed."""
        old = self._state[node]
        if old == state:
            return False
        counts = self.per_generation[self._generation[node]]
        counts[old] -= 1
        counts[state] += 1
        self._state[node] = state
        return True

    def state(self, node: int) -> TaskState:
        """The node's last recorded state."""
        return self._state[node]

    def buckets(self, rows: int) -> list[tuple[int, int, Counter[TaskState]]]:
        """Generations grouped into at most ``rows`` runs: ``(first, last, counts)``."""
        gens = self.per_generation
        size = max(1, -(-len(gens) // max(rows, 1)))
        out = []
        for first in range(0, len(gens), size):
            last = min(first + size, len(gens)) - 1
            total: Counter[TaskState] = Counter()
            for g in gens[first : last + 1]:
                total.update(g)
            out.append((first, last, total))
        return out
