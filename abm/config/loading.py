"""From YAML text to a validated ``Config`` and back: the YAML loader with its limits and merge keys, ``--set``, error messages.

:func:`load_config` reads a file (with ``--set`` overrides, :func:`apply_override`),
:func:`parse_config` validates a mapping, :func:`to_yaml` writes a resolved
config; a validation error becomes one :class:`ConfigError` with a line per
problem, each naming the dotted key.
"""
from __future__ import annotations

import re
import reprlib
import typing
from collections import Counter
from pathlib import Path
from types import UnionType
from typing import Any, Union

import yaml
from pydantic import BaseModel, ValidationError

from abm.config.base import UNKNOWN_VARIANT, ConfigError, Variants, field_annotation
from abm.config.presets import SUPPRESSOR_PRESETS
from abm.config.root import Config


#: Most values (scalars, lists and mappings) in a config after aliases are expanded: a hand-written
#: config holds hundreds; the limit stops an "alias bomb" (billion laughs) before it is expanded.
MAX_YAML_NODES = 100_000
#: Deepest nesting of lists and mappings, aliases expanded (the schema itself is 6 deep).
MAX_YAML_DEPTH = 100
#: Largest config file, bytes (a config is a few kB).
MAX_CONFIG_BYTES = 1 << 20
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: Top-level keys of a config file that start with this are ignored: a place to define YAML anchors.
EXTENSION_PREFIX = "x-"
#: The top-level key naming the config file a file builds on (:func:`load_config`).
EXTENDS_KEY = "extends"
#: What ``extends`` may name: a YAML file in the same directory, by its plain name (no folder, no leading dot).
EXTENDS_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.ya?ml")
#: Longest chain of files that extend one another.
MAX_EXTENDS_DEPTH = 8


class YAMLRefused(yaml.YAMLError):
    """YAML that parses but is refused: a repeated key, too many values, or nesting too deep.

    Attributes:
        key: dotted key of the value at fault ("" for the top level).
        problem: what is wrong and what is allowed.
        mark: where in the text.
    """

    def __init__(self, key: str, problem: str, mark: Any) -> None:
        super().__init__(key, problem, mark)
        self.key, self.problem, self.mark = key, problem, mark

    def __str__(self) -> str:
        where = f"line {self.mark.line + 1}, column {self.mark.column + 1}: " if self.mark is not None else ""
        return f"{self.key or '(top level)'}: {where}{self.problem}"


try:  # libyaml scans and parses about ten times faster; composing (the checks below) stays in Python
    from yaml._yaml import CParser as _CParser

    class _SafeLoader(yaml.composer.Composer, _CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """yaml.CSafeLoader with PyYAML's Python composer, so that :class:`_ConfigLoader` can check each node."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
except ImportError:  # PyYAML without libyaml
    _SafeLoader = yaml.SafeLoader  # type: ignore[misc, assignment]


class _ConfigLoader(_SafeLoader):
    """YAML's safe loader, with the checks a config needs while its text is composed.

    * A key written twice in one mapping is an error (YAML keeps the last);
      keys brought in by a merge key (``<<: *base``, YAML 1.1) may be
      overridden, as the merge-key rules say.
    * At most :data:`MAX_YAML_NODES` values and :data:`MAX_YAML_DEPTH` levels,
      counted with aliases expanded, and checked before anything is expanded.
    * Numbers with an exponent and no sign or dot (``1e-3``, ``1.0e5``) are
      floats, as in YAML 1.2 (YAML 1.1 reads them as strings).

    Errors name the dotted key (``key_prefix`` first: the key of a ``--set``).
    """

    def __init__(self, stream: str, key_prefix: tuple[str, ...] = ()) -> None:
        super().__init__(stream)
        self._path: list[str] = list(key_prefix)
        self._depth = 0
        self._count = 0
        self._size: dict[int, int] = {}  # id(node) -> values in it, aliases expanded
        self._height: dict[int, int] = {}  # id(node) -> levels in it, aliases expanded

    def current_key(self) -> str:
        """Dotted key of the value being read (cut short past 12 parts)."""
        return ".".join(self._path[:12]) + ("..." if len(self._path) > 12 else "")

    def _refuse(self, problem: str, mark: Any) -> YAMLRefused:
        return YAMLRefused(self.current_key(), problem, mark)

    def _add(self, values: int, mark: Any) -> None:
        self._count += values
        if self._count > MAX_YAML_NODES:
            raise self._refuse(f"more than {MAX_YAML_NODES:,} values with aliases expanded; a config holds at most "
                               f"{MAX_YAML_NODES:,}", mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        # index: None for a mapping key (and the document), the key's node for a mapping value, a number in a list
        part = index.value if isinstance(index, yaml.ScalarNode) else str(index) if isinstance(index, int) else (
            None if index is None else "?")
        if part is not None:
            self._path.append(part)
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = self._expand_alias(event, parent, index)
        else:
            node = self._compose_counted(event, parent, index)
        if part is not None:
            self._path.pop()
        return node

    def _expand_alias(self, event: Any, parent: Any, index: Any) -> Any:
        """The node an alias names, counted as if written out again here."""
        target = self.anchors.get(event.anchor)
        if target is not None:  # else PyYAML refuses the undefined alias
            if id(target) not in self._size:
                raise self._refuse(f"alias *{event.anchor} lies inside the node it names (a cycle)", event.start_mark)
            if self._depth + self._height[id(target)] > MAX_YAML_DEPTH:
                raise self._refuse(f"alias *{event.anchor} nests values more than {MAX_YAML_DEPTH} levels deep; "
                                   f"at most {MAX_YAML_DEPTH}", event.start_mark)
            self._add(self._size[id(target)], event.start_mark)
        return super().compose_node(parent, index)

    def _compose_counted(self, event: Any, parent: Any, index: Any) -> Any:
        """A node written out here, its values and levels counted (aliases in it expanded)."""
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise self._refuse(f"values nested more than {MAX_YAML_DEPTH} levels deep; at most {MAX_YAML_DEPTH}", event.start_mark)
        before = self._count
        self._add(1, event.start_mark)
        node = super().compose_node(parent, index)
        children = [child for pair in node.value for child in pair] if isinstance(node, yaml.MappingNode) else (
            node.value if isinstance(node, yaml.SequenceNode) else [])
        self._height[id(node)] = 1 + max((self._height[id(child)] for child in children), default=0)
        self._size[id(node)] = self._count - before
        self._depth -= 1
        return node

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue  # merged keys may be overridden; a key that is a list or mapping is refused when constructed
            key = self.construct_object(key_node)
            if key in seen:
                self._path.append(str(key))
                raise self._refuse(f"key {key!r} appears twice in the same mapping; a key must be unique", key_node.start_mark)
            seen.add(key)
        return node


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _yaml_problem(error: yaml.YAMLError) -> str:
    """Where and why YAML does not parse, on one line: `` at line L, column C, in KEY: problem``."""
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    where += f", in {error.key}" if getattr(error, "key", "") else ""
    problem = getattr(error, "problem", None) or str(error)
    return f"{where}: {' '.join(problem.split())}"


def read_yaml(text: str, key_prefix: tuple[str, ...] = ()) -> Any:
    """The value of a YAML text, read by :class:`_ConfigLoader` (its limits and key checks).

    Raises:
        YAMLRefused: a repeated key, too many values or too deep.
        yaml.YAMLError: text that does not parse; a ``key`` attribute holds the dotted key being read.
    """
    loader = _ConfigLoader(text, key_prefix)
    try:
        return loader.get_single_data()
    except YAMLRefused:
        raise
    except yaml.YAMLError as exc:
        exc.key = loader.current_key()  # type: ignore[attr-defined]
        raise
    finally:
        loader.dispose()


def _variants_at(node: Any) -> Variants | None:
    """The :class:`abm.config.base.Variants` of a section that is one of several variants, or None if ``node`` is none."""
    if typing.get_origin(node) is typing.Annotated:
        for marker in node.__metadata__:
            if isinstance(marker, Variants):
                return marker
    return None


def _walk(location: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """``location`` without the variant tags pydantic adds inside a section of variants, and the schema node
    there (a section class or an annotation; None past what the schema describes)."""
    node: Any = Config
    kept: list[Any] = []
    for part in location:
        variants = _variants_at(node)
        if variants is not None and part in variants.members():  # the variant tried: no key of the config
            node = variants.members()[part]
            continue
        kept.append(part)
        if typing.get_origin(node) in (list, dict):
            node = typing.get_args(node)[-1]
        elif isinstance(node, type) and issubclass(node, BaseModel) and part in node.model_fields:
            node = field_annotation(node.model_fields[part])
        else:
            node = None
        for member in typing.get_args(node) if typing.get_origin(node) in (Union, UnionType) else ():
            if isinstance(member, type) and issubclass(member, BaseModel):
                node = member
    return tuple(kept), node


def _allowed_keys(location: tuple[Any, ...]) -> list[str] | None:
    """Keys allowed in the config section at ``location``, or None if it is no section."""
    node = _walk(location)[1]
    if isinstance(node, type) and issubclass(node, BaseModel):
        return list(node.model_fields)
    return None


#: Most validation errors listed in one message (the rest are counted).
MAX_ERRORS_SHOWN = 20
_SHOW = reprlib.Repr()  # a value as text, cut short (a list of a million values is not printed)
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxstring, _SHOW.maxother = 2, 4, 4, 60, 60


#: The last part pydantic adds to the key of an error for each member of a union it tried (``'no_flux'`` or a number).
_UNION_MEMBER = re.compile(r"literal\[.*\]|constrained-\w+|float|int|str|bool")


def _merge_union_members(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The errors with those of one value that fits no member of a union made one, its messages joined by "or"."""
    def base(item: dict[str, Any]) -> tuple[Any, ...] | None:
        location = tuple(item["loc"])
        tagged = location and isinstance(location[-1], str) and _UNION_MEMBER.fullmatch(location[-1])
        return location[:-1] if tagged else None

    members = Counter(base(item) for item in errors)
    merged: dict[Any, dict[str, Any]] = {}
    for number, item in enumerate(errors):
        key = base(item)
        if key is None or members[key] < 2:
            merged[number] = item
        elif key in merged:
            merged[key]["msg"] += f", or: {item['msg']}"
        else:
            merged[key] = {**item, "loc": key}
    return list(merged.values())


def _describe_errors(error: ValidationError) -> str:
    """One line per validation error: the dotted key, what is wrong, and the value given (shortened)."""
    lines = []
    errors = _merge_union_members(error.errors())
    for item in errors[:MAX_ERRORS_SHOWN]:
        location = tuple(item["loc"])
        location = _walk(location)[0] if location else location
        key = ".".join(str(part) for part in location)
        if item["type"] == UNKNOWN_VARIANT:  # a section of variants whose variant key names none
            shown = item.get("input")
            tag = _variants_at(_walk(tuple(item["loc"]))[1]).tag  # type: ignore[union-attr]
            if isinstance(shown, dict):
                lines.append(f"{key}.{tag}: {item['msg']} (got {_SHOW.repr(shown.get(tag))})")
            else:
                lines.append(f"{key}: should be a section (got {_SHOW.repr(shown)})")
            continue
        if location[-1:] == ("[key]",):  # a mapping key that is no valid name
            message = item["msg"].removeprefix("Value error, ")
            lines.append(f"{'.'.join(str(part) for part in location[:-2])}: key {location[-2]!r}: {message}")
            continue
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(tuple(item["loc"])[:-1])
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"{key}: unknown key{hint}")
            continue
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if not location:  # a whole-config check: its message names its own key
            lines.append(message)
            continue
        shown = item.get("input")
        is_section = isinstance(shown, dict) or (isinstance(shown, list) and any(isinstance(entry, dict) for entry in shown))
        got = "" if item["type"] == "missing" or is_section else f" (got {_SHOW.repr(shown)})"
        lines.append(f"{key}: {message}{got}")
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"... and {len(errors) - MAX_ERRORS_SHOWN} more errors")
    return "\n  ".join(lines)


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one ``dotted.key=value`` override to a raw config mapping, in place.

    The value is read as YAML (``3``, ``0.5``, ``[64, 64]``, ``no_flux``), with
    the limits of a config file (:func:`read_yaml`).
    A number in the path indexes a list (``tumor.clones.0.cycle_time_h=20``).
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected dotted.key=value")
    dotted, text = assignment.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(parts):
        raise ConfigError(f"--set {assignment!r}: empty part in key {dotted!r}")
    try:
        value = read_yaml(text, tuple(parts))
    except YAMLRefused as exc:
        raise ConfigError(f"--set {exc.key}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {dotted}: value {_SHOW.repr(text)} is not valid YAML{_yaml_problem(exc)}") from None
    assign(raw, parts, value, f"--set {dotted}")


def assign(raw: dict[str, Any], parts: list[str], value: Any, label: str) -> None:
    """Set the value at the dotted key ``parts`` of a raw config mapping, in place, as ``--set`` does (a number
    in the key indexes a list; a variant's tag drops the keys of the variant it replaces).

    Raises:
        ConfigError: the key passes a value or the end of a list; the message starts with ``label``.
    """
    if _legacy_suppressor_key(raw, parts):
        _override_suppressor(raw, parts, value)
        return
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{label}: {where} is not an index of a list of {len(node)}")
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"{label}: {where} is a value, not a section")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"{label}: {last} is not an index of a list of {len(node)}")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
        _keep_keys_of_variant(node, parts, value)
    else:
        raise ConfigError(f"{label}: {'.'.join(parts[:-1])} is a value, not a section")


def _keep_keys_of_variant(section: dict[str, Any], parts: list[str], value: Any) -> None:
    """After ``--set SECTION.TAG=VALUE`` chose a variant of a section of variants (``vessels.pattern=none``,
    ``tumor.initial.geometry=scattered``, ``drugs.NAME.kind=...``), drop the section's keys the chosen variant
    does not have: they belonged to the variant the config had, so choosing another on the command line works
    on any config (in a config file, a key of another variant is an error)."""
    location = tuple(int(part) if part.isdigit() else part for part in parts[:-1])
    variants = _variants_at(_walk(location)[1]) if location else None
    if variants is None or parts[-1] != variants.tag or not isinstance(value, str):
        return
    chosen = variants.members().get(value)
    if chosen is not None:
        for key in [key for key in section if key not in chosen.model_fields]:
            del section[key]


def _legacy_suppressor_key(raw: dict[str, Any], parts: list[str]) -> bool:
    """Whether ``parts`` is ``immune.<legacy key>...`` (:data:`SUPPRESSOR_PRESETS`) on a mapping whose immune section holds
    the table ``suppressors`` instead (a resolved config)."""
    immune = raw.get("immune")
    return (len(parts) >= 2 and parts[0] == "immune" and parts[1] in SUPPRESSOR_PRESETS and isinstance(immune, dict)
            and isinstance(immune.get("suppressors"), dict) and immune.get(parts[1]) is None)


def _override_suppressor(raw: dict[str, Any], parts: list[str], value: Any) -> None:
    """``--set immune.<legacy key>...=value`` on a resolved config: the same on its preset type in ``immune.suppressors``
    (null removes the type), the preset types first, as the legacy key declares them."""
    immune = raw["immune"]
    immune.pop(parts[1], None)
    name = SUPPRESSOR_PRESETS[parts[1]]
    table = immune["suppressors"]
    if len(parts) == 2 and value is None:
        table.pop(name, None)
        return
    if len(parts) == 2:
        table[name] = value
    else:
        node = table.setdefault(name, {})
        for depth, part in enumerate(parts[2:-1]):
            if not isinstance(node, dict):
                raise ConfigError(f"--set {'.'.join(parts)}: {'.'.join(parts[:depth + 2])} is a value, not a section")
            node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {'.'.join(parts)}: {'.'.join(parts[:-1])} is a value, not a section")
        node[parts[-1]] = value
    presets = [preset for preset in SUPPRESSOR_PRESETS.values() if preset in table]
    immune["suppressors"] = {key: table[key] for key in [*presets, *(key for key in table if key not in presets)]}


def parse_config(raw: Any, origin: str = "config") -> Config:
    """Validate a raw mapping (as read from YAML) into a :class:`Config`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        config = Config.model_validate(raw)
        config.time.total_steps  # noqa: B018 - checks that durations are whole steps
        config.time.steps(config.time.record_every_h, "record_every_h")
        for key in ("snapshot_every_h", "checkpoint_every_h"):
            if getattr(config.time, key) is not None:
                config.time.steps(getattr(config.time, key), key)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: invalid config:\n  {_describe_errors(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{origin}: invalid config:\n  {exc}") from None
    return config


def with_values(config: Config, values: dict[str, Any], origin: str) -> Config:
    """``config`` with the value at each dotted key of ``values`` set as ``--set`` sets it (:func:`assign`), then
    validated in full: a virtual patient's or a sweep point's config.

    Raises:
        ConfigError: a key that cannot be set, or a value the config refuses; the message starts with ``origin``.
    """
    raw = config.model_dump(mode="json")
    for key, value in values.items():
        assign(raw, key.split("."), value, f"{origin}: {key}")
    return parse_config(raw, origin)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override and validate a YAML config.

    A file whose top level has ``extends: NAME.yaml`` builds on that file, found in the same directory: the
    base is read first (it may extend another, up to :data:`MAX_EXTENDS_DEPTH` files), then each value the
    file gives is set over it as ``--set`` sets it (:func:`assign`: a mapping is entered key by key, a list or
    a scalar replaces what the base has, and a variant's tag drops the keys of the variant it replaces). Only
    the merged config is validated.

    Args:
        path: the YAML file.
        overrides: ``dotted.key=value`` strings applied before validation.

    Raises:
        ConfigError: missing file, YAML that does not parse, a bad ``extends``, or an invalid value.
    """
    path = Path(path)
    raw = _read_config_file(path, ())
    if isinstance(raw, dict) and overrides:
        try:  # override the resolved config, so --set reaches defaults the file leaves out
            raw = Config.model_validate(raw).model_dump(mode="json")
        except ValidationError:
            pass  # the overrides may be what makes it valid; parse_config reports what is left
        for assignment in overrides:
            apply_override(raw, assignment)
    return parse_config(raw, str(path))


def _read_config_file(path: Path, extended_by: tuple[Path, ...]) -> Any:
    """The raw mapping of the config file ``path`` with the file it extends merged under it (:func:`load_config`),
    without its ``x-`` keys, its vessel file's path made absolute; ``extended_by``: the files that extend it."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a config file holds at most {MAX_CONFIG_BYTES:,} bytes")
    try:
        raw = read_yaml(path.read_text(encoding="utf-8"))
    except YAMLRefused as exc:
        raise ConfigError(f"{path}: invalid config:\n  {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: YAML does not parse{_yaml_problem(exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return raw
    raw = {key: value for key, value in raw.items() if not (isinstance(key, str) and key.startswith(EXTENSION_PREFIX))}
    vessels = raw.get("vessels")
    if isinstance(vessels, dict) and isinstance(vessels.get("file"), str):
        vessels["file"] = str((path.parent / vessels["file"]).resolve())
    if EXTENDS_KEY not in raw:
        return raw
    base = _extended_file(path, raw.pop(EXTENDS_KEY), extended_by)
    merged = _read_config_file(base, (*extended_by, path))
    if not isinstance(merged, dict):
        raise ConfigError(f"{path}: extends: {base.name}'s top level is a {type(merged).__name__}, not a mapping of keys")
    for parts, value in _leaves(raw, ()):
        assign(merged, list(parts), value, f"{path}: {'.'.join(parts)}")
    return merged


def _extended_file(path: Path, name: Any, extended_by: tuple[Path, ...]) -> Path:
    """The file that ``extends: name`` in ``path`` names (ConfigError naming the key and what is allowed)."""
    if not isinstance(name, str) or not EXTENDS_NAME.fullmatch(name):
        raise ConfigError(f"{path}: extends: {_SHOW.repr(name)} is not allowed; give the name of a .yaml or .yml "
                          "file in the same directory (letters, digits, '_', '-' and '.', no folder)")
    base = path.parent / name
    chain = (*extended_by, path)
    if any(base.resolve() == seen.resolve() for seen in chain):
        raise ConfigError(f"{path}: extends: {name} leads back to itself "
                          f"({' -> '.join(seen.name for seen in (*chain, base))})")
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise ConfigError(f"{path}: extends: a chain of at most {MAX_EXTENDS_DEPTH} files may extend one another")
    if not base.is_file():
        raise ConfigError(f"{path}: extends: {name} is not a file in {path.parent}")
    return base


def _leaves(raw: dict[str, Any], prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """Each dotted key of ``raw`` whose value is no mapping, with that value, a mapping's keys in order (an empty
    mapping sets nothing)."""
    leaves: list[tuple[tuple[str, ...], Any]] = []
    for key, value in raw.items():
        parts = (*prefix, str(key))
        if isinstance(value, dict):
            leaves.extend(_leaves(value, parts))
        else:
            leaves.append((parts, value))
    return leaves


def to_yaml(config: Config, extra: dict[str, Any] | None = None) -> str:
    """The resolved config as YAML (every default filled in), with ``extra`` keys first."""
    data = dict(extra or {})
    data.update(config.model_dump(mode="json"))
    return yaml.safe_dump(data, sort_keys=False)
