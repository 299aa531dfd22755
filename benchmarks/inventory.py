"""Per-array memory inventory of a model: the lattice layers, the fields and every field solver's arrays.

Builds configs/immune_excluded.yaml (or ``--config``) on a cube of side
``--size``, runs ``--steps`` cell steps, then lists every array the model
keeps between steps: each lattice layer's arrays, each field, and every
array of the fields rule's shared solver workspace (CG vectors, V-cycle
levels; kernels.diffusion.Workspace) and any other array reachable from its
solvers, found by walking the objects and counted once per memory buffer (a
view counts with the array it views). It prints
one row per array: where it is held, dtype, bytes per lattice voxel; then
the totals. Arrays a rule makes and drops within a step are not kept and do
not appear here (benchmarks/memory.py measures the peak with them).

Usage::

    python benchmarks/inventory.py [--config FILE] [--size 48] [--steps 2] [--backend numpy]
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.*
from abm.config import load_config  # noqa: E402
from abm.model import TumorModel  # noqa: E402
from kernels.backend import get_backend  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "immune_excluded.yaml"


def _root(array: Any) -> Any:
    """The array that owns ``array``'s memory (``array`` itself unless it is a view)."""
    while getattr(array, "base", None) is not None and hasattr(array.base, "nbytes"):
        array = array.base
    return array


def _walk(value: Any, path: str, found: dict[int, tuple[str, Any]], seen: set[int], is_array: Any) -> None:
    """Record every array reachable from ``value`` under the first path that reaches it."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if is_array(value):
        root = _root(value)
        found.setdefault(id(root), (path, root))
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}[{key!r}]" if not isinstance(key, str) else f"{path}.{key}", found, seen, is_array)
    elif isinstance(value, (list, tuple)):
        for number, item in enumerate(value):
            _walk(item, f"{path}[{number}]", found, seen, is_array)
    elif isinstance(value, functools.partial):
        for number, item in enumerate(value.args):
            _walk(item, f"{path}<call>", found, seen, is_array)
        for item in value.keywords.values():
            _walk(item, f"{path}<call>", found, seen, is_array)
        _walk(value.func, path, found, seen, is_array)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            _walk(getattr(value, item.name), f"{path}.{item.name}", found, seen, is_array)
    elif hasattr(value, "__dict__") and type(value).__module__.startswith(("kernels", "abm")):
        for key, item in vars(value).items():
            if key not in ("xp", "workspace"):  # the shared workspace is listed by name
                _walk(item, f"{path}.{key}", found, seen, is_array)


def inventory(model: TumorModel) -> list[tuple[str, str, float]]:
    """``(where, dtype, bytes per voxel)`` of every array the model keeps between steps, each buffer once.

    The lattice layers and fields come first (by name), then the fields rule's shared workspace (by array name),
    then what its solvers keep of their own.
    """
    xp = model.lattice.xp
    voxels = model.config.lattice.voxels
    found: dict[int, tuple[str, Any]] = {}
    seen: set[int] = set()

    def is_array(value: Any) -> bool:
        return isinstance(value, xp.ndarray)

    lattice = model.lattice
    for layer in ("tumor", "immune", "vessels"):
        _walk(getattr(lattice, layer), f"lattice.{layer}", found, seen, is_array)
    _walk(lattice.fields, "lattice.fields", found, seen, is_array)
    rule = model.rule("fields")
    for (name, _, _), array in rule.workspace._arrays.items():
        _walk(array, f"fields rule.workspace {name}", found, seen, is_array)
    _walk(rule.solvers, "fields rule.solvers", found, seen, is_array)
    return [(path, str(array.dtype), array.nbytes / voxels) for path, array in found.values()]


def main(argv: list[str] | None = None) -> None:
    """Build, step, and print the inventory."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="config file (default configs/immune_excluded.yaml)")
    parser.add_argument("--size", type=int, default=48, help="cube side, voxels (default 48)")
    parser.add_argument("--steps", type=int, default=2, help="cell steps before the inventory (default 2)")
    parser.add_argument("--backend", default="numpy", help="backend (default numpy)")
    arguments = parser.parse_args(argv)
    backend = get_backend(arguments.backend)
    shape = [arguments.size] * 3
    config = load_config(arguments.config, [f"lattice.shape={shape}", f"backend={backend.name}"])
    model = TumorModel(config, backend)
    for _ in range(arguments.steps):
        model.step()
    rows = inventory(model)
    print(f"{arguments.config.name} on {arguments.size}^3 ({config.lattice.voxels:,} voxels), "
          f"after {arguments.steps} cell steps, backend {backend.name}")
    print(f"{'where':<72} {'dtype':<8} {'B/voxel':>8}")
    for path, dtype, per_voxel in rows:
        if per_voxel >= 0.05:
            print(f"{path:<72} {dtype:<8} {per_voxel:8.2f}")
    small = sum(per_voxel for _, _, per_voxel in rows if per_voxel < 0.05)
    print(f"{'(arrays under 0.05 B/voxel each)':<72} {'':<8} {small:8.2f}")
    for prefix in ("lattice.tumor", "lattice.immune", "lattice.vessels", "lattice.fields", "fields rule"):
        total = sum(per_voxel for path, _, per_voxel in rows if path.startswith(prefix))
        print(f"total {prefix:<66} {'':<8} {total:8.2f}")
    print(f"{'total':<72} {'':<8} {sum(row[2] for row in rows):8.2f}")


if __name__ == "__main__":
    main()
