"""Generate docs/config-reference.md from the config schema.

Run ``python -m abm.reference > docs/config-reference.md`` after changing
:mod:`abm.config`; tests/test_reference.py fails while the committed file
and the schema disagree, so the reference cannot drift from the code.
"""
from __future__ import annotations

import typing
from types import UnionType
from typing import Any, Union

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from abm.config import Config
from abm.config.base import Variants, field_annotation

HEADER = """# Config reference

Generated from the schema in `abm/config/` by `python -m abm.reference`; do
not edit by hand. Every section forbids unknown keys. Units are in the key
names. Sources: [PCi] PhysiCell cancer-immune sample project
(doi:10.1371/journal.pcbi.1005991); [PCc] PhysiCell core defaults; [IO]
SPQSP_IO NSCLC parameters; [HCC] SPQSP-HCC parameters; [MAPLE] SPQSP-PDAC
calibration anchors; [dP06] de Pillis et al. 2006
(doi:10.1016/j.jtbi.2005.06.037). "assumption" marks a value with no
literature source. The field presets and their sources are in
docs/fields.md; the model and its defaults in docs/model.md.

Names of fields, drugs, arms, clones, T-cell clones and lines start with a
letter and have at most 64 letters, digits, `_` and `-`. Types are strict:
`true` is no number, and a quoted number is a string. Every number has the
range shown below; besides, a run has at most 1,000,000 cell steps and a
cell step at most 1,000 movement or field substeps. YAML merge keys
(`<<: *base`) work; top-level keys starting with `x-` are ignored (a place
for anchors). A config file holds at most 1 MiB and 100,000 values with
aliases expanded, nested at most 100 deep.

A file may build on another: `extends: NAME.yaml` at its top level names a
file in the same directory (a plain name: no folder, no leading dot). The
base is read first, then every value the file gives is set over it as
`--set` sets it: a mapping is entered key by key, a list or a single value
replaces the base's, and a variant's tag (`vessels.pattern`, `kind`, ...)
drops the keys of the variant it replaces. Only the merged config is
validated, and a run records the merged config. Chains of up to 8 files
work; a loop is an error. The GPU sizes of the 3-D presets are written this
way (`configs/*_3d_gpu.yaml`).
"""


def _variants(annotation: Any) -> Variants | None:
    """The :class:`abm.config.base.Variants` of a section of variants (``Annotated[..., Variants(...)]``), or None."""
    for marker in getattr(annotation, "__metadata__", ()):
        if isinstance(marker, Variants):
            return marker
    return None


def _sections(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """(title suffix, class) of the config sections reachable through an annotation (lists, dicts, optionals,
    each variant of a section of variants, titled by its tag and value)."""
    variants = _variants(annotation)
    if variants is not None:
        return [(f" ({variants.tag}: {name})", section) for name, section in variants.members().items()]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    found: list[tuple[str, type[BaseModel]]] = []
    for argument in typing.get_args(annotation):
        found.extend(_sections(argument))
    return found


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    variants = _variants(annotation)
    if variants is not None:
        return f"section by `{variants.tag}` (" + " / ".join(f"`{name}`" for name in variants.members()) + ")"
    if origin in (Union, UnionType):
        return " or ".join(_type_name(argument) for argument in typing.get_args(annotation))
    if origin is typing.Literal:
        return " / ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin is typing.Annotated:
        base, *constraints = typing.get_args(annotation)
        return _type_name(base) + _bounds(constraints)
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(annotation))}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


_SYMBOLS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _bounds(constraints: list[Any]) -> str:
    """Numeric bounds of a field as text, e.g. ``(> 0)``; pydantic keeps them in metadata."""
    found = []
    for constraint in constraints:
        for item in [constraint, *getattr(constraint, "metadata", [])]:
            for attribute, symbol in _SYMBOLS.items():
                value = getattr(item, attribute, None)
                if type(item).__name__.lower() == attribute and value is not None:
                    found.append(f"{symbol} {value}")
    return f" ({', '.join(found)})" if found else ""


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, BaseModel):
        return "(section defaults)"
    if isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
        return f"{', '.join(value)} (see below)"
    if isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
        return "one entry with defaults"
    return f"`{value!r}`"


def render(model: type[BaseModel] = Config) -> str:
    """The reference page as Markdown, one table per config section."""
    lines = [HEADER]
    # (title, dotted key of the section, section): a kind's title adds the kind to the key
    queue: list[tuple[str, str, type[BaseModel]]] = [("(top level)", "(top level)", model)]
    seen: set[type[BaseModel]] = set()
    while queue:
        title, key, section = queue.pop(0)
        if section in seen:
            continue
        seen.add(section)
        lines.append(f"\n## {title}\n")
        doc = (section.__doc__ or "").strip().splitlines()[0]
        lines.append(f"{doc}\n")
        lines.append("| key | type | default | meaning |")
        lines.append("|---|---|---|---|")
        for name, field in section.model_fields.items():
            description = (field.description or "").replace("|", "/")
            annotation = field_annotation(field)
            kind = _type_name(annotation) + _bounds(field.metadata)
            lines.append(f"| `{name}` | {kind} | {_default(field)} | {description} |")
            for suffix, child in _sections(annotation):
                prefix = name if key == "(top level)" else f"{key}.{name}"
                if typing.get_origin(field.annotation) is list:
                    prefix += "[]"
                elif typing.get_origin(field.annotation) is dict:
                    prefix += ".NAME"
                queue.append((prefix + suffix, prefix, child))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
