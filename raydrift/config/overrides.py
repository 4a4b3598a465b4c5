"""Config from and to plain data: the JSON round trip, ``--set key=value`` overrides, typed parsing.

Every value is parsed by its field's annotation (``Literal`` choices, numbers, booleans, tuples) and the
sections re-validate themselves, so an override fails with a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import re
import types
import typing
from typing import Annotated, Any, Literal

from .schema import Config, ConfigError, field_range


def to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(data: dict[str, Any], cls: type = Config) -> Any:
    """Build ``cls`` from a nested dict, validating every key and value."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(_unknown_key_message(key, names, cls.__name__))
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a mapping of its fields, got {value!r}")
            kwargs[key] = from_dict(value, tp)
        else:
            kwargs[key] = _coerce(value, tp, key)
    return cls(**kwargs)


def flat_keys(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """``{"drift.kernel": type, ...}`` for every leaf field."""
    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(flat_keys(tp, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = tp
    return out


def apply_overrides(cfg: Config, overrides: dict[str, Any] | list[str]) -> Config:
    """New config with dotted-key overrides: ``["drift.kernel=gaussian"]`` or ``{"drift.kernel": ...}``.

    String values are parsed by the field's type (``0.02,0.05`` or ``[0.02, 0.05]`` for tuples); one
    item of a tuple field is set with an index: ``drift.temperatures[0]=0.01``.
    """
    if isinstance(overrides, list):
        parsed = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} must look like key=value (e.g. drift.kernel=gaussian)")
            key, value = item.split("=", 1)
            parsed[key.strip()] = value.strip()
        overrides = parsed
    data = to_dict(cfg)
    leaves = flat_keys()
    for key, value in overrides.items():
        base, index = split_index(key)
        if base not in leaves:
            raise ConfigError(_unknown_key_message(base, set(leaves), "the config"))
        node = data
        *parents, leaf = base.split(".")
        for p in parents:
            node = node[p]
        tp = leaves[base]
        if index is None:
            node[leaf] = _coerce(value, tp, key) if isinstance(value, str) else value
            continue
        if typing.get_origin(tp) is not tuple:
            raise ConfigError(f"{key}: only tuple fields take an index, and {base} is {_type_name(tp)}")
        items = list(node[leaf])
        if not 0 <= index < len(items):
            raise ConfigError(f"{key}: index out of range, {base} has {len(items)} items {tuple(items)}")
        items[index] = _coerce(value, typing.get_args(tp)[0], key)
        node[leaf] = items
    return from_dict(data)


def split_index(key: str) -> tuple[str, int | None]:
    """``"drift.temperatures[0]"`` -> ``("drift.temperatures", 0)``; plain keys get ``None``."""
    match = re.fullmatch(r"(.+)\[(\d+)\]", key)
    return (match.group(1), int(match.group(2))) if match else (key, None)


def describe_keys() -> list[tuple[str, str, str]]:
    """``(key, type, doc)`` for every leaf (for ``--help`` style listings); bounds follow the type."""
    out = []
    for key, tp in flat_keys().items():
        *parents, leaf = key.split(".")
        cls: type = Config
        for p in parents:
            cls = typing.get_type_hints(cls)[p]
        bounds = field_range(cls, leaf)
        kind = _type_name(tp) + (f" ({bounds.describe()})" if bounds and bounds.describe() else "")
        out.append((key, kind, _field_doc(key)))
    return out


def _field_doc(dotted: str) -> str:
    cls: type = Config
    *parents, leaf = dotted.split(".")
    for p in parents:
        cls = typing.get_type_hints(cls)[p]
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == leaf:
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                return str(nxt.value.value)
    return ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "tuple of " + _type_name(typing.get_args(tp)[0])
    return getattr(tp, "__name__", str(tp))


def _unknown_key_message(key: str, names: set[str], where: str) -> str:
    close = difflib.get_close_matches(key, sorted(names), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"unknown config key {key!r} in {where}.{hint} (`raydrift train --list-keys` lists every key)"


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Parse/check ``value`` against the annotation ``tp``; raise ConfigError naming ``key``."""
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    try:
        if origin is Literal:
            choices = typing.get_args(tp)
            if value not in choices:
                raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
            return value
        if origin is tuple:
            item_tp = typing.get_args(tp)[0]
            if isinstance(value, str):
                text = value.strip().strip("()[]")
                value = [v for v in (p.strip() for p in text.split(",")) if v]
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{key} must be a list like 0.02,0.05; got {value!r}")
            return tuple(_coerce(v, item_tp, key) for v in value)
        if origin in (typing.Union, types.UnionType):
            raise ConfigError(f"{key}: unsupported annotation {tp}")
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in (
                "true",
                "1",
                "yes",
                "on",
                "false",
                "0",
                "no",
                "off",
            ):
                return value.lower() in ("true", "1", "yes", "on")
            raise ConfigError(f"{key} must be true or false; got {value!r}")
        if tp is int:
            num = float(value) if isinstance(value, str) else value
            if isinstance(num, bool) or not float(num).is_integer():
                raise ConfigError(f"{key} must be an integer; got {value!r}")
            return int(num)
        if tp is float:
            if isinstance(value, bool):
                raise ConfigError(f"{key} must be a number; got {value!r}")
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        kind = {"int": "an integer", "float": "a number"}.get(_type_name(tp), _type_name(tp))
        raise ConfigError(f"{key} must be {kind}; got {value!r}") from None
    raise ConfigError(f"{key}: unsupported annotation {tp}")


def load_config(path) -> Config:
    """The config saved in a run directory's ``config.json``."""
    with open(path) as f:
        return from_dict(json.load(f))
