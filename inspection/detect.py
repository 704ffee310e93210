"""Tell what a path holds from its layout: a curation output, a training run, an evaluation, a reconstruction or a sample."""

from __future__ import annotations

from pathlib import Path

from d4d.inspection.curation_data import InspectError, find_render_dirs
from d4d.inspection.evaluation_view import is_evaluation
from d4d.inspection.reconstruction_view import find_reconstructions
from d4d.inspection.sample_view import find_samples
from d4d.inspection.training_view import is_training_run

KINDS = ("curation", "training", "evaluation", "reconstruction", "sample")


def detect_kind(path: Path) -> str:
    """"training" (train_config.json, or checkpoints/ with logs/), "evaluation" (a d4d-eval
    eval.json), "reconstruction" (metrics.json with turntable.mp4 or canonical.ply, here or in
    subdirectories), "curation" (decisions.parquet, shards/ or part-*.parquet), "sample" (a
    d4d-sample output: a render directory whose asset.json has render.engine "d4d-sample", or a
    folder whose render directories all are) or "curation" (other render directories), checked
    in that order.

    Raises InspectError naming the path when it is none of them.
    """
    path = Path(path)
    if not path.is_dir():
        raise InspectError(f"{path}: not a directory")
    if is_training_run(path):
        return "training"
    if is_evaluation(path):
        return "evaluation"
    if find_reconstructions(path):
        return "reconstruction"
    if (path / "decisions.parquet").is_file() or (path / "shards").is_dir() or any(path.glob("part-*.parquet")):
        return "curation"
    if find_samples(path):
        return "sample"
    if find_render_dirs(path):
        return "curation"
    raise InspectError(f"{path}: not a curation output (decisions.parquet, shards/, render directories), "
                       "a training run (train_config.json), an evaluation (eval.json), a reconstruction (metrics.json + turntable.mp4) "
                       "or a d4d-sample output")
