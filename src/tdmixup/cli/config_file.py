"""``--config FILE``: a command's options from a JSON, YAML or TOML file, with the options given on
the command line overriding the file's.

A file sets options in either of two shapes, mixed freely:

* **sections**, as in a run's ``config.json``: ``{"train": {"seed": 3, "epochs": 2}}``, keyed by
  the fields of the config dataclasses (:data:`tdmixup.cli.options.SECTIONS`). One file can serve
  every command: a field that a command has no option for is left out (``tdmixup evaluate``
  reads ``data`` and ``train.eval_batch_size`` only);
* **options by their long name**, without the dashes and with ``_`` or ``-``: ``output_dir``,
  ``strategy``, ``profile``, ``batch_size``, ``aum_epochs``, ``model``. These are the command's
  own options, so one the command does not have is an error.

A run folder's ``config.json`` is such a file: its settings are under ``"config"``, its
``environment`` and ``changed_from_stage`` records are not options (a different tdmixup version
is warned about), and a setting it lacks because it was written before the setting existed
takes the value the run used (:data:`tdmixup.run.session.FOLDER_KEEPS`). So
``tdmixup run --config runs/x/config.json --output-dir runs/y`` repeats run x: same settings,
same seed, same numbers.

A key that is neither a field nor an option is one line naming the file and the key, like a
value of the wrong type. Paths in a file are read as on the command line: relative to the
current folder, not to the file's. Anchor: ``transformers.HfArgumentParser.parse_json_file`` /
``parse_yaml_file``, which build the dataclasses from a file and refuse unknown keys; here the
file's values then pass through the command line's own options, so a flag overrides them.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from tdmixup import __version__
from tdmixup.cli.options import SECTIONS, _int_or_all, _pair

__all__ = [
    "ConfigFileError",
    "add_config_file_option",
    "file_options",
    "parse_args_with_config_file",
    "read_config_file",
]

log = logging.getLogger("tdmixup.cli")

RECORD_KEYS = ("environment", "changed_from_stage")
"""Keys of a run folder's ``config.json`` beside ``"config"`` that are records, not options."""
_NOT_IN_FILES = ("help", "version", "config", "verbose")
"""Options a file cannot set: they are about this invocation, not the run."""


class ConfigFileError(ValueError):
    """A ``--config`` file that cannot be read or names an unknown key or a wrong value; the
    message is one line that names the file and the key."""


def add_config_file_option(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` on a command's parser."""
    parser.add_argument(
        "--config",
        default=None,
        help="Read options from a JSON, YAML or TOML file: sections as in a run's config.json "
        "({train: {seed: 3}}) and/or options by name (output_dir: runs/x, batch_size: 8). "
        "Options given on the command line override the file; a run's config.json repeats "
        "that run.",
    )


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.json``, ``.yaml``/``.yml`` or ``.toml`` file (TOML: tables are the
    sections, ``[train]``; :mod:`tomllib`, or ``tomli`` before Python 3.11).

    Raises:
        ConfigFileError: the file is missing, unreadable, not JSON/YAML/TOML, or not a mapping.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml", ".toml"):
        raise ConfigFileError(f"--config {path}: expected a .json, .yaml, .yml or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigFileError(f"--config {path}: {err.strerror or err}") from err
    if suffix == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigFileError(
                f"{path}: not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
            ) from err
    elif suffix == ".toml":
        values = _read_toml(path, text)
    else:
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigFileError(f"{path}: not valid YAML: {problem}{where}") from err
    if not isinstance(values, dict):
        raise ConfigFileError(
            f"{path}: expected a mapping of option: value at the top, got {type(values).__name__}"
        )
    return values


def _read_toml(path: Path, text: str) -> dict[str, Any]:
    """A TOML file's table; its parser's message (which names the line and column) on an error."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigFileError(f"{path}: not valid TOML: {err}") from err


def parse_args_with_config_file(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None
) -> argparse.Namespace:
    """``parser.parse_args(argv)``, with the options of a subcommand's ``--config FILE`` filled in
    where the command line does not give them.

    Each option the file sets stops being required and defaults to nothing on the command's
    parser, so the parsed namespace holds exactly the options typed; the file's values then fill
    the rest. The file's values are checked first (:func:`file_options`).

    Raises:
        ConfigFileError: the file cannot be read, or it names an unknown key or a wrong value.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    found = _find_config(parser, args)
    if found is None:
        return parser.parse_args(args)
    command, sub, path = found
    values = file_options(read_config_file(path), sub, command=command, source=path)
    actions = {a.dest: a for a in sub._actions}
    for dest, value in values.items():
        action = actions[dest]
        action.required = False
        if action.option_strings:
            action.default = argparse.SUPPRESS  # the namespace then shows what was typed
        else:  # a positional (experiment's table): optional, the file's value its default
            action.nargs, action.default = "?", value
    ns = parser.parse_args(args)
    if getattr(ns, "config", None) != path:
        raise ConfigFileError(f"--config {path}: give --config once, after the command")
    for dest, value in values.items():
        if not hasattr(ns, dest):
            setattr(ns, dest, value)
    return ns


class _PreParseError(Exception):
    pass


class _QuietParser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise _PreParseError(message)


def _find_config(
    parser: argparse.ArgumentParser, args: list[str]
) -> tuple[str, argparse.ArgumentParser, str] | None:
    """The command, its parser and the ``--config`` path typed after it, or None (no file, or a
    command line that ``parser`` will refuse with its own message)."""
    commands = next(
        (a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None
    )
    position = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if not commands or position is None or args[position] not in commands:
        return None
    pre = _QuietParser(add_help=False)
    pre.add_argument("--config", default=None)
    try:
        known, _ = pre.parse_known_args(args[position + 1 :])
    except _PreParseError:
        return None
    if known.config is None:
        return None
    return args[position], commands[args[position]], known.config


def file_options(
    values: dict[str, Any], parser: argparse.ArgumentParser, *, command: str, source: str | Path
) -> dict[str, Any]:
    """The file's options as ``dest → value`` of ``parser`` (a command's), each value as the
    option would have parsed it (config fields: as :func:`tdmixup.cli.options.config_from_args`
    reads them).

    Raises:
        ConfigFileError: an unknown key (with the closest known one), a wrong value, or two keys
            that set the same option.
    """
    dests = {a.dest: a for a in parser._actions}
    names = _option_names(parser)
    out: dict[str, tuple[str, Any]] = {}

    def put(dest: str, key: str, value: Any) -> None:
        if dest in out and out[dest][0] != key:
            raise ConfigFileError(
                f"{source}: {out[dest][0]} and {key} set the same option; keep one"
            )
        out[dest] = (key, value)

    values = dict(values)
    sections: list[tuple[str, dict[str, Any]]] = []
    record = values.pop("config", None)
    if record is not None:
        if not isinstance(record, dict):
            raise ConfigFileError(
                f"{source}: 'config' holds the settings of a run's config.json (a mapping of "
                f"sections), got {record!r}; a config file cannot name another"
            )
        _check_record(values, source)
        for key in RECORD_KEYS:
            values.pop(key, None)
        sections += list(_with_folder_keeps(record, source).items())
    for key, value in values.items():
        if key in SECTIONS and isinstance(value, dict):
            sections.append((key, value))
            continue
        action = names.get(str(key).replace("-", "_"))
        if action is None:
            raise ConfigFileError(_unknown(source, str(key), command, names, value))
        put(action.dest, key, _option_value(action, value, f"{source}: {key}"))
    for section, fields in sections:
        if section not in SECTIONS or not isinstance(fields, dict):
            known = [*SECTIONS, *names]
            raise ConfigFileError(_unknown(source, str(section), command, known, fields))
        hints = typing.get_type_hints(SECTIONS[section])
        for name, value in fields.items():
            key = f"{section}.{name}"
            if name not in hints:
                field_keys = [f"{section}.{n}" for n in hints]
                raise ConfigFileError(_unknown(source, key, command, field_keys))
            dest = f"{section}__{name}"
            if key == "mixup.strategy" and dest not in dests and "strategy" in dests:
                put("strategy", key, _strategy(dests["strategy"], value, source, command))
            elif dest in dests:  # else: a field this command has no option for
                put(dest, key, _field_value(hints[name], value, f"{source}: {key}"))
    return {dest: value for dest, (_, value) in out.items()}


def _option_names(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Each option's long name without dashes, ``_`` for ``-`` (``output_dir``), and each
    positional's name → its action."""
    names: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action.dest in _NOT_IN_FILES or isinstance(action, argparse._SubParsersAction):
            continue
        longs = [s for s in action.option_strings if s.startswith("--")]
        name = longs[0][2:] if longs else (action.dest if not action.option_strings else "")
        if name:
            names[name.replace("-", "_")] = action
    return names


def _unknown(
    source: str | Path, key: str, command: str, known: Any, value: Any = dataclasses.MISSING
) -> str:
    if value is not dataclasses.MISSING and key in SECTIONS:
        return (
            f"{source}: {key}: expected a mapping of {key} fields "
            f"({key}: {{field: value}}), got {value!r}"
        )
    if key in _NOT_IN_FILES:
        return f"{source}: {key}: give --{key} on the command line; a file cannot set it"
    close = difflib.get_close_matches(key.replace("-", "_"), list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"{source}: unknown key {key!r}: neither a config field nor an option of "
        f"`tdmixup {command}`{hint}"
    )


def _check_record(values: dict[str, Any], source: str | Path) -> None:
    """Warn when a run's ``config.json`` was written by another tdmixup version."""
    env = values.get("environment")
    versions = env.get("versions") if isinstance(env, dict) else None
    written = versions.get("tdmixup") if isinstance(versions, dict) else None
    if written and written != __version__:
        log.warning(
            "%s was written by tdmixup %s and this is %s: the same settings may not give the "
            "same numbers",
            source,
            written,
            __version__,
        )


def _with_folder_keeps(record: dict[str, Any], source: str | Path) -> dict[str, Any]:
    """A run's settings with those it was written before (:data:`FOLDER_KEEPS`) set to the
    values it ran with, so that repeating it repeats its behaviour."""
    from tdmixup.run.session import FOLDER_KEEPS

    record = {k: dict(v) if isinstance(v, dict) else v for k, v in record.items()}
    for (section, name), legacy in FOLDER_KEEPS.items():
        part = record.setdefault(section, {})
        if isinstance(part, dict) and name not in part:
            part[name] = legacy
            log.warning("%s has no %s.%s: the run used %r", source, section, name, legacy)
    return record


def _strategy(action: argparse.Action, value: Any, source: str | Path, command: str) -> Any:
    """``mixup.strategy`` of a run's ``config.json`` as ``--strategy``: ``tdmixup run`` records
    its default (tdmixup) as the config's ``none``."""
    choices = list(action.choices or ())
    if value in choices:
        return value
    if value == "none":
        return action.default
    raise ConfigFileError(
        f"{source}: mixup.strategy {value!r}: `tdmixup {command} --strategy` takes "
        f"{', '.join(map(str, choices))}"
    )


def _option_value(action: argparse.Action, value: Any, where: str) -> Any:
    """A command's own option (or a config option by name) as the command line would give it."""
    if "__" in action.dest:  # a config field, by its option name
        section, name = action.dest.split("__", 1)
        return _field_value(typing.get_type_hints(SECTIONS[section])[name], value, where)
    if isinstance(action, argparse._StoreTrueAction | argparse.BooleanOptionalAction):
        return _expect(isinstance(value, bool), value, where, "true or false")
    if isinstance(action, argparse._AppendAction):
        items = [value] if isinstance(value, str) else value
        _expect(isinstance(items, list), value, where, "a list")
        return [_scalar(action, v, where) for v in items]
    return _scalar(action, value, where)


def _scalar(action: argparse.Action, value: Any, where: str) -> Any:
    kind = action.type
    if kind in (int, float):
        value = _number(kind, value, where)
    elif callable(kind) and isinstance(value, str):
        try:
            value = kind(value)
        except (argparse.ArgumentTypeError, ValueError) as err:
            raise ConfigFileError(f"{where}: {err}") from None
    elif value is not None or action.default is not None:
        _expect(isinstance(value, str), value, where, "a string")
    if action.choices is not None and value is not None and value not in action.choices:
        raise ConfigFileError(
            f"{where}: expected one of {', '.join(map(str, action.choices))}, got {value!r}"
        )
    return value


def _field_value(tp: Any, value: Any, where: str) -> Any:
    """A config field's value from a file, checked against its type hint; lists stay lists
    (:func:`tdmixup.cli.options.config_from_args` makes tuples)."""
    args = [a for a in get_args(tp) if a is not type(None)]
    if get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        if value is None or (args[0] is int and isinstance(value, str)):
            return None if value is None else _all_or_int(value, where)
        tp = args[0]
    if tp is bool:
        return _expect(isinstance(value, bool), value, where, "true or false")
    if get_origin(tp) is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigFileError(
                f"{where}: expected one of {', '.join(map(str, choices))}, got {value!r}"
            )
        return value
    if tp in (int, float):
        return _number(tp, value, where)
    if tp is str:
        return _expect(isinstance(value, str), value, where, "a string")
    if get_origin(tp) is tuple:
        inner = get_args(tp)[0]
        if get_origin(inner) is tuple:
            return _pairs(value, where)
        if isinstance(value, dict):  # test_files as {name: path}
            return [f"{k}={v}" for k, v in value.items()]
        items = [value] if isinstance(value, str) else value
        ok = isinstance(items, list) and all(isinstance(v, str) for v in items)
        return _expect(ok, items, where, "a list of strings")
    raise ConfigFileError(f"{where}: cannot be set from a file")  # pragma: no cover


def _all_or_int(value: str, where: str) -> int | None:
    try:
        return _int_or_all(value)
    except argparse.ArgumentTypeError as err:
        raise ConfigFileError(f"{where}: {err}") from None


def _pairs(value: Any, where: str) -> list[tuple[str, str]]:
    """Column mappings: ``{text_a: premise}``, ``["text_a=premise"]`` or ``[["text_a",
    "premise"]]`` (as ``config.json`` writes them)."""
    if isinstance(value, dict):
        value = [[k, v] for k, v in value.items()]
    pairs = []
    for item in value if isinstance(value, list) else [None]:
        if isinstance(item, str) and "=" in item:
            pairs.append(_pair(item))
        elif isinstance(item, list) and len(item) == 2 and all(isinstance(v, str) for v in item):
            pairs.append((item[0], item[1]))
        else:
            raise ConfigFileError(
                f"{where}: expected FIELD: COLUMN pairs, e.g. {{text_a: premise}}, got {value!r}"
            )
    return pairs


def _number(kind: Any, value: Any, where: str) -> Any:
    """An int or float; a string that reads as one (YAML reads ``1e-5`` as a string)."""
    if isinstance(value, str):
        try:
            value = float(value) if kind is float else int(value)
        except ValueError:
            pass
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    what = "a whole number" if kind is int else "a number"
    return _expect(isinstance(value, kind) and not isinstance(value, bool), value, where, what)


def _expect(ok: bool, value: Any, where: str, what: str) -> Any:
    if not ok:
        raise ConfigFileError(f"{where}: expected {what}, got {value!r}")
    return value
