"""YAML configuration files validated by pydantic models: every problem is a ConfigError that
names the file and, where the YAML shows it, the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from omnid.errors import ConfigError

Model = TypeVar("Model", bound=BaseModel)

_MAX_PROBLEMS = 5


def read_config_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read {what}: {error.strerror or error}") from None


def parse_yaml(text: str, origin: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{origin}{where}: not valid YAML: {problem}") from None


def validate_yaml(
    text: str, origin: str, model: type[Model], what: str, extra: dict[str, Any] | None = None
) -> Model:
    """`model` from YAML `text`; `extra` adds fields that do not come from the file."""
    document = parse_yaml(text, origin)
    if not isinstance(document, dict):
        raise ConfigError(f"{origin}: the {what} must be a mapping")
    try:
        return model.model_validate({**document, **(extra or {})})
    except ValidationError as error:
        problems = []
        for item in error.errors()[:_MAX_PROBLEMS]:
            location = tuple(item["loc"])
            line = _line_of(text, location)
            where = f":{line}" if line else ""
            dotted = ".".join(str(part) for part in location) or "(top level)"
            problems.append(f"{origin}{where}: {dotted}: {item['msg']}")
        raise ConfigError("; ".join(problems)) from None


def load_yaml_model(path: Path, model: type[Model], what: str) -> Model:
    return validate_yaml(read_config_text(path, what), str(path), model, what)


def _line_of(text: str, location: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at a pydantic error location (the closest existing parent)."""
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    found = node
    for part in location:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    child = value_node
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break
        node = found = child
    return found.start_mark.line + 1 if found is not None else None
