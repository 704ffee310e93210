"""d4d-curate's arguments, source specs and captions; no Blender, no Ray."""

from __future__ import annotations

import pytest

from d4d.curation.sources import SourceRecord
from d4d.pipelines.curate import build_parser, config_from_args, main
from d4d.pipelines.runner import record_captions
from d4d.pipelines.sources import SourceSpec, parse_source


def test_source_specs(tmp_path):
    assert parse_source(f"local:{tmp_path}", tmp_path / "out") == SourceSpec("local", str(tmp_path.resolve()))
    assert parse_source("builtin", tmp_path / "out") == SourceSpec("builtin", str((tmp_path / "out" / "assets").resolve()))
    assert parse_source("objaverse", tmp_path) == SourceSpec("objaverse", None)
    assert parse_source("objaverse-xl:/cache", tmp_path, online=True, id_list="ids.txt") == SourceSpec("objaverse-xl", "/cache", online=True, id_list="ids.txt")


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("s3:bucket", {}, "unknown kind 's3'"),
        ("local:", {}, "local needs a folder"),
        ("local:/no/such/folder", {}, "is not a folder"),
        ("builtin:x", {}, "builtin takes no path"),
        ("builtin", {"online": True}, "apply to objaverse sources"),
    ],
)
def test_bad_source_specs_name_the_input(text, kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        parse_source(text, tmp_path, **kwargs)


def test_flags_map_onto_the_config(tmp_path):
    curation = tmp_path / "d4d.curation.json"
    curation.write_text('{"ssim_too_static": 0.9}')
    args = build_parser().parse_args(
        ["--source", "builtin", "--out", str(tmp_path), "--frames", "12", "--resolution", "64", "--engine", "workbench", "--workers", "3",
         "--gpus-per-worker", "0.5", "--max-attempts", "4", "--timeout", "30", "--config", str(curation)]
    )  # fmt: skip
    config = config_from_args(args)
    render = config.decision.render
    assert (render.frames, render.resolution, render.engine, config.workers, config.gpus_per_worker) == (12, 64, "workbench", 3, 0.5)
    assert (config.max_attempts, config.render_timeout_s, config.decision.rules.ssim_too_static) == (4, 30.0, 0.9)
    assert config.worker_decision().render.device == "gpu"  # workers that reserve a GPU render on it
    # Every field of the settings is a flag (generated from the field docs), also the rules'.
    more = build_parser().parse_args(["--source", "builtin", "--out", str(tmp_path), "--min-coverage", "0.05", "--max-sample-step-s", "none",
                                      "--orbits", "2", "--memory-gb", "4", "--no-reject-previews"])
    config = config_from_args(more)
    assert config.decision.rules.min_coverage == 0.05 and config.decision.render.max_sample_step_s is None
    assert config.decision.render.orbits == 2 and config.limits.memory_gb == 4.0 and not config.decision.reject_previews


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--engine", "povray"], "invalid choice: 'povray'"),
        (["--workers", "0"], "workers must be >= 1"),
        (["--resolution", "8"], "resolution must be in"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--max-attempts", "0"], "max_attempts must be >= 1"),
        (["--retry-failed", "render_failed", "bogus"], "--retry-failed: unknown reason bogus; one of "),
        (["--min-free-gb", "-1"], "min_free_gb must be >= 0"),
    ],
)
def test_bad_flags_exit_2_with_one_line(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--source", "builtin", "--out", str(tmp_path), *flags])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_unlistable_source_exits_2_naming_the_cache(tmp_path, capsys):
    assert main(["--source", f"objaverse:{tmp_path}", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("d4d-curate: source objaverse:") and "object-paths.json.gz" in err and len(err.splitlines()) == 1


def test_captions_join_by_sha256_or_objaverse_uid_without_prefix(tmp_path):
    v1 = SourceRecord(uid="a" * 32, source="objaverse-1.0", file_identifier="https://sketchfab.com/3d-models/" + "a" * 32, sha256=None, license="by")
    local = SourceRecord(uid="b" * 64, source="local", file_identifier="/data/x.glb", sha256="b" * 64, license=None)
    other = SourceRecord(uid="c" * 64, source="local", file_identifier="/data/y.glb", sha256="c" * 64, license=None)
    csv = tmp_path / "cap3d.csv"
    csv.write_text(f"{'a' * 32},A walking robot\n{'b' * 64},\"A red, spinning top\"\n{'d' * 32},unrelated\n")
    assert record_captions([v1, local, other], csv) == {"a" * 32: "A walking robot", "b" * 64: "A red, spinning top"}
    assert record_captions([v1], None) == {}

