"""Memory planning: activation tensors and scratch in one static arena, laid out by lifetime.

Tensors that hold the same bytes form one group, one arena buffer: a RESHAPE's output and its input,
and the output of a kernel that can run in place (Step.inplace: a 1x1 stride-1 convolution, the 3x3
depthwise convolution) and its input, when nothing after that step reads the input. Groups and the
steps' scratch are then placed greedily by size (plan_memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .flatbuffer import Graph, Tensor, UnsupportedModelError
from .lower import Aliases, Step, c_name

ARENA_ALIGN = 4  # word alignment for every arena buffer


@dataclass
class Buffer:
    name: str
    size: int
    first: int  # first step that writes it
    last: int  # last step that reads it
    offset: int = -1
    tensors: list[str] = field(default_factory=list)  # the tensors sharing it (empty for scratch)


def _align(n: int) -> int:
    return (n + ARENA_ALIGN - 1) // ARENA_ALIGN * ARENA_ALIGN


def plan_memory(buffers: list[Buffer]) -> int:
    """Greedy by size (largest first), each at the lowest offset that does not
    overlap a placed buffer whose lifetime intersects. Returns the arena size."""
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first, b.name)):
        conflicts = sorted((p for p in placed if p.first <= buf.last and buf.first <= p.last), key=lambda p: p.offset)
        offset = 0
        for p in conflicts:
            if offset + buf.size <= p.offset:
                break
            offset = max(offset, _align(p.offset + p.size))
        buf.offset = offset
        placed.append(buf)
    return _align(max((b.offset + b.size for b in buffers), default=0))


def storage(path: Path, graph: Graph, steps: list[Step]) -> tuple[dict, dict, list[Buffer]]:
    """Maps every activation tensor to "in", "out" or an arena Buffer, and each
    step that needs scratch to its own Buffer; returns (tensors, scratch, buffers).

    RESHAPE outputs join their input's group (same bytes, no copy), and so do
    in-place outputs whose input nothing later reads. The group holding the
    model input is the caller's const input buffer and the group holding the
    model output is written straight into the caller's output.
    """
    aliases = Aliases(steps)
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        r = aliases.root(i)
        while parent.get(r, r) != r:
            r = parent[r]
        return r

    in_root, out_root = root(graph.inputs[0].index), root(graph.outputs[0].index)
    if in_root == out_root:
        raise UnsupportedModelError(f"{path}: model output is a reshape of its input")
    for i, s in enumerate(steps):
        if not s.inplace:
            continue
        src, dst = root(s.reads[0].index), root(s.write.index)
        if src == dst or {src, dst} & {in_root, out_root}:
            continue
        if any(root(t.index) == src for later in steps[i + 1 :] for t in later.reads):
            continue
        parent[dst] = src
    spans: dict[int, list[int]] = {}
    sizes: dict[int, int] = {}
    for i, s in enumerate(steps):
        for t in s.reads + [s.write]:
            r = root(t.index)
            span = spans.setdefault(r, [i, i])
            span[0], span[1] = min(span[0], i), max(span[1], i)
            sizes[r] = max(sizes.get(r, 0), t.size)

    names: dict[int, list[str]] = {}
    for t in {t.index: t for s in steps for t in s.reads + [s.write]}.values():
        names.setdefault(root(t.index), []).append(t.name)
    buffers, by_root = [], {}
    for r in sorted(spans):
        if r not in (in_root, out_root):
            by_root[r] = Buffer(f"t{r}", sizes[r], *spans[r], tensors=sorted(names[r]))
            buffers.append(by_root[r])
    scratch = {}
    for i, s in enumerate(steps):
        if s.scratch:
            scratch[s.op.index] = Buffer(f"{c_name(s.op)}_scratch", s.scratch, i, i)
            buffers.append(scratch[s.op.index])

    def where(t: Tensor):
        r = root(t.index)
        return "in" if r == in_root else "out" if r == out_root else by_root[r]

    return {t.index: where(t) for s in steps for t in s.reads + [s.write]}, scratch, buffers
