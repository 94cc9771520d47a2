from __future__ import annotations

import json
from pathlib import Path

import pytest

from omicslens.cli.main import main
from tests.conftest import CMU1, TCGA


def test_info_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(CMU1)]) == 0
    out = capsys.readouterr().out
    assert (
        "aperio-svs" in out
        and "0.499" in out
        and "240x240" in out
        and "label, macro, thumbnail" in out
    )


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(CMU1), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["width"] == 2220 and info["height"] == 2967
    assert info["mpp_x"] == pytest.approx(0.499)
    assert info["levels"][0]["tile_width"] == 240
    assert info["levels"][0]["compression"] == "jpeg"
    assert "metadata" not in info


def test_info_json_missing_resolution_exits_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(TCGA), "--json"]) == 1
    captured = capsys.readouterr()
    error = json.loads(captured.out)
    assert error["type"] == "MissingResolutionError"
    assert str(TCGA) in error["error"]
    assert "--mpp" in captured.err


def test_info_with_mpp_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(TCGA), "--mpp", "0.2527", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["mpp_source"] == "given by the user"
    assert [lv["width"] for lv in info["levels"]] == [4443, 2221]


def test_info_on_non_slide(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.svs"
    bad.write_text("nope")
    assert main(["info", str(bad), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["type"] == "CorruptSlideError"


def test_info_metadata_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(CMU1), "--json", "--metadata"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["metadata"]["aperio"]["AppMag"] == 20


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys) -> None:
    import omicslens.cli.main as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_info", interrupted)
    assert cli.main(["info", str(CMU1)]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "omicslens: interrupted" and "Traceback" not in err


def test_a_closed_pipe_is_not_an_error(monkeypatch) -> None:
    import omicslens.cli.main as cli

    def reader_left(args):
        raise BrokenPipeError

    monkeypatch.setattr(cli, "cmd_info", reader_left)
    monkeypatch.setattr(cli.os, "dup2", lambda *a: None)  # keep pytest's stdout
    assert cli.main(["info", str(CMU1)]) == 0
