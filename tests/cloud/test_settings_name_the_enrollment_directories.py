"""``EDGEFLEET_BROKER_DIR`` and ``EDGEFLEET_PKI_DIR`` turn box enrollment on together: one without the other, or a
directory that does not exist, is refused with a line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.cloud.settings import Settings


def test_both_directories_turn_enrollment_on(tmp_path: Path) -> None:
    (tmp_path / "broker").mkdir()
    (tmp_path / "pki").mkdir()

    settings = Settings.from_env(
        {"EDGEFLEET_BROKER_DIR": str(tmp_path / "broker"), "EDGEFLEET_PKI_DIR": str(tmp_path / "pki")}
    )

    assert (settings.broker_dir, settings.pki_dir) == (tmp_path / "broker", tmp_path / "pki")
    assert Settings.from_env({}).broker_dir is None


def test_one_without_the_other_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="box enrollment needs both EDGEFLEET_BROKER_DIR and EDGEFLEET_PKI_DIR"):
        Settings.from_env({"EDGEFLEET_BROKER_DIR": str(tmp_path)})


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^EDGEFLEET_PKI_DIR='.*nowhere': no such directory"):
        Settings.from_env({"EDGEFLEET_BROKER_DIR": str(tmp_path), "EDGEFLEET_PKI_DIR": str(tmp_path / "nowhere")})
