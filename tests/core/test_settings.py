from __future__ import annotations

import json
import shutil
from pathlib import Path

from omicslens.core.settings import config_dir, remember_mpp, remembered_mpp
from tests.conftest import TCGA


def test_remembered_resolution_follows_content_not_name(tmp_path: Path) -> None:
    assert remembered_mpp(TCGA) is None
    remember_mpp(TCGA, 0.2527)
    copy = tmp_path / "renamed.svs"
    shutil.copy(TCGA, copy)
    assert remembered_mpp(copy) == 0.2527
    stored = json.loads((config_dir() / "resolutions.json").read_text())
    assert len(stored) == 1
    # no temporary files left behind by the atomic write
    assert [p.name for p in config_dir().iterdir()] == ["resolutions.json"]


def test_corrupt_settings_file_is_ignored_not_fatal() -> None:
    config_dir().mkdir(parents=True, exist_ok=True)
    (config_dir() / "resolutions.json").write_text("{not json")
    assert remembered_mpp(TCGA) is None
    remember_mpp(TCGA, 0.5)
    assert remembered_mpp(TCGA) == 0.5
