"""The README's Configuration table lists exactly the fields of omnid.config.Settings."""

from __future__ import annotations

from pathlib import Path

from pydantic.fields import FieldInfo

from omnid.config import PROJECT_ROOT, Settings

README = PROJECT_ROOT / "README.md"


def shown_default(field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    if default is None:
        return "unset"
    if isinstance(default, Path) and default.is_relative_to(PROJECT_ROOT):
        return f"`{default.relative_to(PROJECT_ROOT)}`"
    return f"`{default}`" if default != "" else "empty"


def expected_rows() -> list[str]:
    rows = []
    for name, field in Settings.model_fields.items():
        meaning = (field.description or "").replace("|", r"\|")
        rows.append(f"| `OMNID_{name.upper()}` | {shown_default(field)} | {meaning} |")
    return rows


def readme_rows() -> list[str]:
    section = README.read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("| `OMNID_")]


def test_every_settings_field_is_documented_in_the_readme_table_as_it_is_in_code() -> None:
    expected = expected_rows()
    assert readme_rows() == expected, (
        "README.md 'Configuration' table is out of date; its rows should be:\n"
        + "\n".join(expected)
    )


def test_every_settings_field_has_a_description() -> None:
    undocumented = [name for name, f in Settings.model_fields.items() if not f.description]
    assert undocumented == []
