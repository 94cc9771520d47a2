"""Every package the code imports is declared in pyproject.toml (or is optional and
guarded); the wheel carries the bundled models and samples."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib

from tests.conftest import ROOT

#: imported only inside a try/except ImportError, offered as extras or through napari
OPTIONAL = {"timm": "timm", "huggingface_hub": "hub", "vispy": "napari's own dependency"}


def _requirement_names(requirements: list[str]) -> set[str]:
    return {
        re.split(r"[<>=\[;! ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements
    }


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _requirement_names(project["dependencies"])
    extras = {k: _requirement_names(v) for k, v in project["optional-dependencies"].items()}
    imported: set[str] = set()
    for path in (ROOT / "src" / "omicslens").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "omicslens"}
    providers = metadata.packages_distributions()
    missing = []
    for module in sorted(third_party):
        distributions = {d.lower().replace("_", "-") for d in providers.get(module, [module])}
        if distributions & declared:
            continue
        if module in OPTIONAL and (
            any(distributions & names for names in extras.values()) or module == "vispy"
        ):
            continue
        missing.append(f"{module} ({', '.join(sorted(distributions))})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"
