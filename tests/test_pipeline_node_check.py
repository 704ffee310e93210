"""The node check (pipelines.node_check) without a cluster: the probe the driver makes and what a
worker says of a node that sees OUT or the source differently. The check on a real multi-node
cluster is in tests/test_pipeline_nodes.py."""

from __future__ import annotations

from pathlib import Path

from d4d.curation.sources import LocalFolderSource
from d4d.pipelines.node_check import TOKEN_NAME, check_node, make_probe
from d4d.testing.objaverse_cache import animated_triangle_glb


def test_the_probe_is_the_smallest_assets_the_driver_fetches_and_a_node_must_see_them_and_out(tmp_path):
    assets, out = tmp_path / "assets", tmp_path / "out"
    assets.mkdir()
    out.mkdir()
    (assets / "cut.glb").write_bytes(animated_triangle_glb()[:60])  # the smallest, but truncated: never a probe
    for name, lines in (("small.obj", 3), ("middle.obj", 30), ("large.obj", 300)):
        (assets / name).write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n" * (lines // 3) + "f 1 2 3\n")
    source = LocalFolderSource(assets)
    records = list(source.records())
    probe = make_probe(out, records, source.fetch)
    assert (out / TOKEN_NAME).read_text() == probe.token and len(probe.token) == 32
    assert [Path(r.local_path).name for r in probe.records] == ["small.obj", "middle.obj"]
    assert check_node(probe, LocalFolderSource(assets).fetch) is None  # a node that sees what the driver sees

    middle = (assets / "middle.obj").read_text()
    (assets / "middle.obj").write_text(middle.replace("v 1 0 0", "v 2 0 0", 1))  # this node's copy: other bytes, same size
    assert "the source differs from the driver's" in check_node(probe, LocalFolderSource(assets).fetch)
    (assets / "small.obj").unlink()  # a node without the assets
    assert "No such file" in check_node(probe, source.fetch)
    assert check_node(probe, None) is None  # a chain without a fetch step: OUT only

    (out / TOKEN_NAME).write_text("another run's token")  # OUT here is another folder
    assert "OUT here is another folder than the driver's" in check_node(probe, None)
    (out / TOKEN_NAME).unlink()
    assert "OUT is not visible here" in check_node(probe, None)
    assert make_probe(out, records, None).records == ()  # --online: each node downloads, nothing probed
