"""A release is checked whole against the inventory before anything runs: every problem is refused with file, line,
camelCase field and reason (``ReleaseError``), nothing half-loaded; what is only doubtful comes back as a warning.
Every file shipped in releases/ loads against sites/."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.errors import ReleaseError
from edgefleet.inventory import Inventory
from edgefleet.releases import Blackout, Wave, load_release, load_release_text, load_releases, release_files

RELEASES = Path(__file__).resolve().parents[2] / "releases"
DIGEST = "sha256:" + "ab" * 32

GOOD = f"""\
apiVersion: edgefleet.io/v1
kind: Release
metadata:
  name: sorting-recognition-9.0.0
spec:
  app: sorting-recognition
  version: 9.0.0
  images:
    sorting-recognition: registry.local:5000/edgefleet/sorting-recognition:9.0.0@{DIGEST}
  model:
    name: rough-handling
    version: 2026.11.2
    sha256: {"0a" * 32}
    url: https://models.local/rough-handling/2026.11.2.onnx
  config: {{detector.threshold: "0.62"}}
  env: {{LOG_LEVEL: info}}
  resources:
    requests: {{cpu: "2", memory: 4Gi, nvidia.com/gpu: "1"}}
    limits: {{cpu: "4", memory: 8Gi, nvidia.com/gpu: "1"}}
  overrides:
    - gpuModels: [NVIDIA T4]
      config: {{detector.threshold: "0.55"}}
    - sites: [bj-daxing]
      env: {{LOG_LEVEL: debug}}
  strategy:
    canary: {{sites: [bj-daxing], coverHardware: true}}
    waves: ["10%", "50%", "100%"]
    soak: 1h30m
    approvalBefore: [1]
    blackouts:
      - {{daily: "20:00-02:00", reason: sorting peak}}
      - {{dates: "2026-11-10..2026-11-12", reason: Double 11, sites: [bj-daxing]}}
"""


def problems_of(text: str, inventory: Inventory) -> list[str]:
    with pytest.raises(ReleaseError) as caught:
        load_release_text(text, "given.yaml", inventory)
    return [str(p) for p in caught.value.problems]


def test_a_good_release_is_parsed_whole(inventory: Inventory) -> None:
    release = load_release_text(GOOD, "given.yaml", inventory)
    assert (release.name, release.app, release.version) == ("sorting-recognition-9.0.0", "sorting-recognition", "9.0.0")
    assert release.strategy.waves == (Wave(percent=10), Wave(percent=50), Wave(percent=100))
    assert release.strategy.soak_s == 5400
    assert release.strategy.blackouts[0] == Blackout("sorting peak", daily=(20 * 60, 2 * 60))
    assert release.strategy.blackouts[1].sites == ("bj-daxing",)
    assert release.overrides[0].gpu_models == ("NVIDIA T4",)
    assert release.model is not None
    assert release.model.name == "rough-handling"
    assert release.pinned
    assert release.warnings == ()


def test_an_image_given_by_tag_is_accepted_with_a_warning_and_pinned_later(inventory: Inventory) -> None:
    release = load_release_text(GOOD.replace(f"@{DIGEST}", ""), "given.yaml", inventory)
    assert [str(w) for w in release.warnings] == [
        "given.yaml:9: spec.images['sorting-recognition']: 'registry.local:5000/edgefleet/sorting-recognition:9.0.0' "
        "is given by tag only; it is pinned by digest when the rollout starts"
    ]
    assert not release.pinned
    pinned = release.pin({"sorting-recognition": DIGEST})
    assert pinned.pinned
    assert pinned.images["sorting-recognition"].endswith(f":9.0.0@{DIGEST}")


# (case, text replaced, by what, the one problem expected: "line: field: reason" starts with it)
REFUSALS = [
    ("unknown canary site", "canary: {sites: [bj-daxing]", "canary: {sites: [bj-daxin]",
     "26: spec.strategy.canary.sites[0]: names site 'bj-daxin', which the inventory has not; did you mean 'bj-daxing'?"),
    ("canary not a transfer center", "canary: {sites: [bj-daxing]", "canary: {sites: [central-bj-dc2]",
     "26: spec.strategy.canary.sites[0]: site 'central-bj-dc2' is a central site; a canary is a transfer center"),
    ("unknown override site", "- sites: [bj-daxing]", "- sites: [nowhere]",
     "23: spec.overrides[1].sites[0]: names site 'nowhere', which the inventory has not"),
    ("unknown blackout site", "sites: [bj-daxing]}\n", "sites: [bj-daxingg]}\n",
     "32: spec.strategy.blackouts[1].sites[0]: names site 'bj-daxingg', which the inventory has not; did you mean"),
    ("unknown GPU model", "gpuModels: [NVIDIA T4]", "gpuModels: [NVIDIA T5]",
     "21: spec.overrides[0].gpuModels[0]: names GPU model 'NVIDIA T5', which no box of the inventory has; did you "
     "mean 'NVIDIA T4'?"),
    ("override naming nothing", "- gpuModels: [NVIDIA T4]\n", "- config: {a: b}\n",
     "21: spec.overrides[0]: an override names the sites or the GPU models it applies to"),
    ("image upper case", "registry.local:5000/edgefleet/sorting", "registry.local:5000/EdgeFleet/sorting",
     "9: spec.images['sorting-recognition']: 'registry.local:5000/EdgeFleet/sorting-recognition:9.0.0@sha256:"),
    ("image short digest", f"@{DIGEST}", "@sha256:abc",
     "9: spec.images['sorting-recognition']: 'registry.local:5000/edgefleet/sorting-recognition:9.0.0@sha256:abc' "
     "is no image reference"),
    ("image without tag or digest", f":9.0.0@{DIGEST}", "",
     "9: spec.images['sorting-recognition']: 'registry.local:5000/edgefleet/sorting-recognition' names neither a "
     "tag nor a digest"),
    ("image tag not the version", "sorting-recognition:9.0.0@", "sorting-recognition:8.0.0@",
     "9: spec.images['sorting-recognition']: the app's image is tagged 8.0.0, not the release's version 9.0.0"),
    ("no container named as the app", "    sorting-recognition: registry", "    recognizer: registry",
     "8: spec.images: no container is named 'sorting-recognition'"),
    ("model missing on sorting-recognition", "  model:\n    name: rough-handling\n    version: 2026.11.2\n"
     f"    sha256: {'0a' * 32}\n    url: https://models.local/rough-handling/2026.11.2.onnx\n", "",
     "5: spec: sorting-recognition ships its recognition model: add spec.model (name, version, sha256, url)"),
    ("model misspelt", "  model:\n    name: rough-handling\n", "  modell:\n    name: x\n",
     "10: spec.modell: Object contains unknown field `modell`"),
    ("model given on scan-upload",
     "app: sorting-recognition\n  version: 9.0.0\n  images:\n    sorting-recognition: registry.local:5000/edgefleet/sorting-recognition:",
     "app: scan-upload\n  version: 9.0.0\n  images:\n    scan-upload: registry.local:5000/edgefleet/scan-upload:",
     "10: spec.model: scan-upload runs no recognition model; remove spec.model"),
    ("model sha256 not hex", "0a" * 32, "z" * 64,
     "13: spec.model.sha256: must be the model file's SHA-256: 64 lower-case hex digits"),
    ("model url", "url: https://models.local/", "url: models.local/",
     "14: spec.model.url: 'models.local/rough-handling/2026.11.2.onnx' is no http(s) URL"),
    ("empty waves", 'waves: ["10%", "50%", "100%"]', "waves: []",
     "27: spec.strategy.waves: there must be at least one wave"),
    ("overlapping waves", 'waves: ["10%", "50%", "100%"]', 'waves: ["50%", "50%", "100%"]',
     "27: spec.strategy.waves: wave 2 (50%) does not go beyond wave 1 (50%)"),
    ("decreasing waves", 'waves: ["10%", "50%", "100%"]', 'waves: ["50%", "10%", "100%"]',
     "27: spec.strategy.waves: wave 2 (10%) does not go beyond wave 1 (50%)"),
    ("waves not reaching 100%", 'waves: ["10%", "50%", "100%"]', 'waves: ["10%", "50%"]',
     "27: spec.strategy.waves: the last wave is 50%; it must be '100%'"),
    ("a wave of nothing", 'waves: ["10%", "50%", "100%"]', 'waves: ["10%", "half", "100%"]',
     "27: spec.strategy.waves[1]: 'half' is no wave"),
    ("a wave over 100%", 'waves: ["10%", "50%", "100%"]', 'waves: ["10%", "150%"]',
     "27: spec.strategy.waves[1]: '150%': a wave's share is more than 0% and at most 100%"),
    ("bad soak", "soak: 1h30m", "soak: 90 minutes",
     "28: spec.strategy.soak: '90 minutes' is no duration: use hours, minutes and seconds such as 1h30m"),
    ("soak over a week", "soak: 1h30m", "soak: 200h",
     "28: spec.strategy.soak: '200h' is longer than a week"),
    ("approval before a wave that is not", "approvalBefore: [1]", "approvalBefore: [4]",
     "29: spec.strategy.approvalBefore[0]: there is no wave 4: the waves after the canary are numbered 1 to 3"),
    ("bad daily window", 'daily: "20:00-02:00"', 'daily: "20h-2h"',
     "31: spec.strategy.blackouts[0].daily: '20h-2h' is no daily window: use HH:MM-HH:MM"),
    ("daily window past the day", 'daily: "20:00-02:00"', 'daily: "20:00-25:00"',
     "31: spec.strategy.blackouts[0].daily: '20:00-25:00' ends at no time of day"),
    ("empty daily window", 'daily: "20:00-02:00"', 'daily: "20:00-20:00"',
     "31: spec.strategy.blackouts[0].daily: '20:00-20:00' starts where it ends"),
    ("bad date range", '"2026-11-10..2026-11-12"', '"2026-11-10 to 2026-11-12"',
     "32: spec.strategy.blackouts[1].dates: '2026-11-10 to 2026-11-12' is no date range"),
    ("no such date", '"2026-11-10..2026-11-12"', '"2026-02-30..2026-03-02"',
     "32: spec.strategy.blackouts[1].dates: '2026-02-30..2026-03-02' holds no calendar date"),
    ("date range backwards", '"2026-11-10..2026-11-12"', '"2026-11-12..2026-11-10"',
     "32: spec.strategy.blackouts[1].dates: '2026-11-12..2026-11-10' ends before it starts"),
    ("window with neither", '{daily: "20:00-02:00", reason', "{reason",
     "31: spec.strategy.blackouts[0]: a blackout gives either daily: HH:MM-HH:MM or dates: YYYY-MM-DD..YYYY-MM-DD, "
     "not neither"),
    ("window with both", '{daily: "20:00-02:00", reason', '{daily: "20:00-02:00", dates: "2026-01-01..2026-01-02", reason',
     "31: spec.strategy.blackouts[0]: a blackout gives either daily: HH:MM-HH:MM or dates: YYYY-MM-DD..YYYY-MM-DD, "
     "not both"),
    ("config value a number", 'config: {detector.threshold: "0.62"}', "config: {detector.threshold: 0.62}",
     "15: spec.config: Expected `str`, got `float`; quote the value (\"0.62\")"),
    ("env name", "env: {LOG_LEVEL: info}", "env: {LOG LEVEL: info}",
     "16: spec.env['LOG LEVEL']: 'LOG LEVEL' is no environment variable name"),
    ("env set by the model", "env: {LOG_LEVEL: info}", "env: {EDGEFLEET_MODEL_URL: x}",
     "16: spec.env.EDGEFLEET_MODEL_URL: EDGEFLEET_MODEL_URL is set from spec.model; remove it here"),
    ("bad quantity", "memory: 4Gi,", "memory: 4 GB,",
     "18: spec.resources.requests.memory: '4 GB' is no quantity"),
    ("GPU request not its limit", 'limits: {cpu: "4", memory: 8Gi, nvidia.com/gpu: "1"}',
     'limits: {cpu: "4", memory: 8Gi, nvidia.com/gpu: "2"}',
     "18: spec.resources.requests['nvidia.com/gpu']: nvidia.com/gpu is requested 1 but limited 2; Kubernetes needs"),
    ("version no label value", "version: 9.0.0", "version: 9.0.0+build",
     "7: spec.version: '9.0.0+build' cannot be a label value"),
    ("bad release name", "name: sorting-recognition-9.0.0", "name: Sorting_9",
     "4: metadata.name: 'Sorting_9' is no release name"),
    ("unknown app", "app: sorting-recognition", "app: sorting",
     "6: spec.app: Invalid enum value 'sorting'; expected one of scan-upload, sorting-recognition"),
    ("unknown field", "  env: {LOG_LEVEL: info}\n", "  envs: {LOG_LEVEL: info}\n",
     "16: spec.envs: Object contains unknown field `envs` (check its spelling and indentation; docs/releases.md"),
    ("wrong kind", "kind: Release", "kind: Rollout",
     "2: apiVersion/kind: expected apiVersion 'edgefleet.io/v1' and kind 'Release', got 'edgefleet.io/v1' and "
     "'Rollout'"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "expected"), [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_a_bad_release_is_refused_with_line_field_and_reason(
    old: str, new: str, expected: str, inventory: Inventory
) -> None:
    assert old in GOOD
    problems = problems_of(GOOD.replace(old, new, 1), inventory)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"given.yaml:{expected}"), problems[0]


def test_every_problem_of_a_release_is_reported_at_once(inventory: Inventory) -> None:
    text = GOOD.replace("soak: 1h30m", "soak: soon").replace("[NVIDIA T4]", "[NVIDIA T9]")
    text = text.replace("approvalBefore: [1]", "approvalBefore: [9]")
    problems = problems_of(text, inventory)
    assert [p.split(":")[2].strip() for p in problems] == [
        "spec.overrides[0].gpuModels[0]",
        "spec.strategy.soak",
        "spec.strategy.approvalBefore[0]",
    ]


def test_a_file_of_two_documents_or_none_is_refused(tmp_path: Path, inventory: Inventory) -> None:
    two = tmp_path / "two.yaml"
    two.write_text(GOOD + "---\n" + GOOD)
    with pytest.raises(ReleaseError, match=r"two.yaml:34: holds more than one document; give each release a file"):
        load_release(two, inventory)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(ReleaseError, match=r"empty.yaml: holds no release manifest"):
        load_release(empty, inventory)
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [\n")
    with pytest.raises(ReleaseError, match=r"broken.yaml:2: is not valid YAML"):
        load_release(broken, inventory)


def test_a_release_name_given_twice_is_refused(tmp_path: Path, inventory: Inventory) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(ReleaseError) as caught:
        load_releases([tmp_path], inventory)
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'b.yaml'}:4: metadata.name: release 'sorting-recognition-9.0.0' is already defined in "
        f"{tmp_path / 'a.yaml'}"
    ]


def test_every_shipped_release_loads_against_the_shipped_inventory(inventory: Inventory) -> None:
    releases = load_releases([RELEASES], inventory)
    assert len(releases) == len(release_files([RELEASES]))
    shipped = {(r.app, r.version) for r in releases}
    assert {("scan-upload", "1.13.1"), ("scan-upload", "1.14.0")} <= shipped
    assert {("sorting-recognition", "3.5.0"), ("sorting-recognition", "3.6.0")} <= shipped
    for release in releases:
        assert release.images[release.app] == f"registry.local:5000/edgefleet/{release.app}:{release.version}"
        # Tag-only images: each is pinned when its rollout starts, and says so.
        assert [w.field for w in release.warnings] == [f"spec.images['{release.app}']"]
        assert any(o.sites for o in release.overrides)
        if release.app == "sorting-recognition":
            assert release.model is not None
            assert release.model.url.startswith("https://models.local/")
            assert release.resources.limits["nvidia.com/gpu"] == "1"
            assert any(o.gpu_models for o in release.overrides)


def test_the_bad_release_says_how_to_make_it_crash_loop(inventory: Inventory) -> None:
    text = (RELEASES / "sorting-recognition-3.6.0.yaml").read_text()
    assert 'edgefleet sim fault crash-loop --version 3.6.0 --gpu-model "NVIDIA T4"' in text
    assert any(b.gpu is not None and b.gpu.model == "NVIDIA T4" for b in inventory.boxes.values())


def test_counts_and_a_zero_soak_may_be_written_unquoted(inventory: Inventory) -> None:
    text = GOOD.replace('waves: ["10%", "50%", "100%"]', 'waves: [5, 20, "100%"]').replace("soak: 1h30m", "soak: 0")
    release = load_release_text(text, "given.yaml", inventory)
    assert release.strategy.waves == (Wave(count=5), Wave(count=20), Wave(percent=100))
    assert release.strategy.soak_s == 0
    assert problems_of(GOOD.replace("soak: 1h30m", "soak: 90"), inventory) == [
        "given.yaml:28: spec.strategy.soak: '90' is no duration: use hours, minutes and seconds such as 1h30m, 10m "
        "or 90s"
    ]


def test_a_gpu_model_override_of_scan_upload_is_a_warning(inventory: Inventory) -> None:
    text = GOOD.replace(
        "app: sorting-recognition\n  version: 9.0.0\n  images:\n    sorting-recognition: "
        "registry.local:5000/edgefleet/sorting-recognition:",
        "app: scan-upload\n  version: 9.0.0\n  images:\n    scan-upload: registry.local:5000/edgefleet/scan-upload:",
    )
    text = text.replace(text[text.index("  model:") : text.index("  config:")], "")
    release = load_release_text(text, "given.yaml", inventory)
    assert [str(w) for w in release.warnings] == [
        "given.yaml:16: spec.overrides[0].gpuModels: scan-upload runs on edge nodes, which have no GPU: this "
        "override applies to no box"
    ]
