"""Every subcommand says what it does and every option is described (issue 16, item 8)."""

from __future__ import annotations

import argparse

import pytest

from omicslens.cli.main import build_parser, main


def walk(parser: argparse.ArgumentParser, path: list[str]):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, [*path, name])


COMMANDS = list(walk(build_parser(), ["omicslens"]))


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_is_described(path, parser) -> None:
    if len(path) > 1:
        assert parser.description, f"{' '.join(path)} has no description"
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert action.help, f"{' '.join(path)} {action.option_strings or action.dest}: no help"


def test_help_of_a_subcommand_shows_its_description(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["type-cells", "-h"])
    assert stop.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Type single-cell crops" in out and "--genetic" in out
    with pytest.raises(SystemExit):
        main(["model", "inspect", "-h"])
    assert "Describe a bundle" in " ".join(capsys.readouterr().out.split())


def test_the_cli_and_the_predict_job_import_without_torch() -> None:
    """``omicslens --help`` and a bad option answer without torch's ~1-3 s import, and
    ``predict`` can find the slide's tissue while torch loads (issue 15)."""
    import subprocess
    import sys

    code = (
        "import sys; import omicslens.cli.main, omicslens.app.predict, omicslens.app.tiles; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
