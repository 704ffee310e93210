"""d4d-decide on render directories (no Blender): one line / JSON object per asset."""

import json

import pytest

from d4d.curation.cli import main
from d4d.testing.curation_render_dirs import make_render_dir


@pytest.fixture(scope="module")
def render_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("renders")
    return {
        "moving": make_render_dir(root / "moving"),
        "still": make_render_dir(root / "still", slide=0.0, geometric_max=0.05),
        "unanimated": make_render_dir(root / "unanimated", animated=False),
        "leaving": make_render_dir(root / "leaving", start_x=0.85, slide=0.1),
        "crashed": make_render_dir(root / "crashed", error={"kind": "crashed", "reason": "Blender segfault", "asset": "x.glb"}),
    }


def test_json_lines_one_per_asset_in_order(render_dirs, capsys):
    names = ["moving", "still", "unanimated", "leaving"]
    rc = main([str(render_dirs[n]) for n in names] + ["--json"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(lines) == 4
    rows = [json.loads(line) for line in lines]
    assert [r["asset"] for r in rows] == [str(render_dirs[n]) for n in names]
    assert [(r["decision"], r["reason"]) for r in rows] == [
        ("keep", None),
        ("reject", "too_static"),
        ("reject", "no_animation"),
        ("reject", "leaves_frame"),
    ]
    assert set(rows[0]) == {"asset", "uid", "asset_uid", "action", "window", "stage", "decision", "reason", "detail", "measures"}
    assert rows[0]["measures"]["ssim_source"] == "front"


def test_text_output_and_failure_exit_status(render_dirs, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "transforms.json").write_text("{not json")
    rc = main([str(render_dirs["moving"]), str(render_dirs["crashed"]), str(broken), str(tmp_path / "absent.glb")])
    out, err = capsys.readouterr()
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert rc == 1
    assert err.splitlines()[-1].startswith("decide: 4/4 assets [") and "\r" not in err  # progress on stderr, plain lines in a file
    assert lines[0][1:3] == ["keep", ""]
    assert lines[1][1:3] == ["failed", "render_failed"] and "Blender segfault" in lines[1][3]
    assert lines[2][1:3] == ["failed", "render_failed"] and "transforms.json" in lines[2][3]
    assert lines[3][1:3] == ["failed", "import_failed"] and "no such file" in lines[3][3]


def test_config_file_overrides_thresholds(render_dirs, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"border_tolerance": 0.5}))
    assert main([str(render_dirs["leaving"]), "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "keep"
    config.write_text(json.dumps({"ssim_treshold": 0.5}))
    with pytest.raises(SystemExit) as exit_:
        main([str(render_dirs["leaving"]), "--config", str(config)])
    assert exit_.value.code == 2 and "unknown keys" in capsys.readouterr().err  # a bad argument


@pytest.mark.blender
@pytest.mark.slow
def test_asset_files_go_through_the_staged_decision(builtin_assets, tmp_path, capsys):
    """Real Blender: the moving built-in is kept by its quality render (kept on request), the
    static one is rejected at the pre-check before any frame is rendered, a broken file fails
    as an import failure."""
    from d4d.files import sha256_file

    broken = tmp_path / "broken.glb"
    broken.write_bytes(b"glTF not really")
    argv = [str(builtin_assets["rigid"]), str(builtin_assets["static"]), str(broken), "--frames", "8", "--resolution", "32",
            "--engine", "workbench", "--max-sample-step-s", "none", "--json"]
    rc = main(argv + ["--render-kept", str(tmp_path / "kept")])
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert rc == 1
    assert (rows[0]["decision"], rows[0]["reason"], rows[0]["stage"]) == ("keep", None, "quality")
    assert rows[0]["uid"] == rows[0]["asset_uid"] == sha256_file(builtin_assets["rigid"])
    assert rows[0]["measures"]["geometric_max_displacement"] > 0.1 and len(rows[0]["measures"]["ssim"]) == 2
    assert (tmp_path / "kept" / rows[0]["uid"] / "transforms.json").is_file()
    assert (rows[1]["decision"], rows[1]["reason"], rows[1]["stage"]) == ("reject", "no_animation", "precheck") and "ssim" not in rows[1]["measures"]
    assert (rows[2]["decision"], rows[2]["reason"]) == ("failed", "import_failed"), rows[2]
