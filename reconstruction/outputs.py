"""Write a reconstruction's output directory and load it back.

    OUT/
      canonical.ply             canonical Gaussians (INRIA 3DGS layout)
      frames/000.ply ...        the Gaussians at each frame time of the input's dynamic orbit
      deformation.safetensors   the HexPlane deformation field (config JSON in its metadata)
      turntable.mp4             novel views (between the training azimuths, raised elevation)
                                while time sweeps 0 -> 1
      heldout.mp4               each held-out view's input frame (left) beside the render of
                                its camera and time (right), one second each (absent with
                                nothing held out)
      metrics.json              held-out PSNR / SSIM per view and mean, LPIPS (null + reason),
                                Gaussian count, timings, backend, the full config; with nothing
                                held out (holdout_every 0) "heldout" is null and the same
                                metrics on the dynamic orbit's training views are under
                                "training_views"
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from d4d.files import write_bytes_atomic, write_json_atomic
from d4d.reconstruction.config import ReconstructConfig
from d4d.reconstruction.deformation import DeformationField
from d4d.reconstruction.export import PLY_FIELDS, load_deformation, ply_bytes, read_ply, save_deformation, sh_rest_from_columns
from d4d.reconstruction.losses import NO_LPIPS_WEIGHTS
from d4d.reconstruction.trainer import Reconstruction, composite, gaussians_at
from d4d.reconstruction.views import viewmats_from_c2w
from d4d.rendering.cameras import orbit_c2w
from d4d.video import write_mp4

TRAINING_VIEWS_NOTE = ("nothing was held out (holdout_every 0): these are the dynamic orbit's training views, "
                       "so they measure the fit, not novel-view quality")
#: Frames per second of heldout.mp4, where each held-out view stays for one second.
HELDOUT_FPS = 4


def turntable_cameras(config: ReconstructConfig, distance: float, n_train_views: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Viewmats [F, 4, 4] (OpenCV) on an orbit offset by half a training step, and times [F] sweeping 0..1."""
    frames = config.turntable_frames
    azimuths = 180.0 / max(n_train_views, 1) + 360.0 * np.arange(frames) / frames
    viewmats = torch.from_numpy(viewmats_from_c2w(orbit_c2w(azimuths, config.turntable_elevation_deg, distance))).float()
    return viewmats, torch.linspace(0.0, 1.0, frames)


def side_by_side(inputs: torch.Tensor, renders: torch.Tensor, repeat: int) -> np.ndarray:
    """uint8 frames [V * repeat, H, 2W, 3]: input | render of each of V views ([V, H, W, 3] in [0, 1]), each repeated."""
    pairs = torch.cat([inputs.cpu(), renders.cpu()], dim=2).clamp(0.0, 1.0)
    return (pairs.repeat_interleave(repeat, dim=0).numpy() * 255).round().astype(np.uint8)


def write_outputs(result: Reconstruction, frame_times: np.ndarray, K: np.ndarray, width: int, height: int, camera_distance: float, out: Path, extra: dict) -> dict:
    """Write OUT (see the module docstring) and return the metrics dict written to metrics.json.

    Args:
        frame_times: [T] times of the per-frame PLYs (the dynamic orbit's frame times).
        K: [3, 3] intrinsics of the turntable. width, height: its size, pixels.
        camera_distance: turntable orbit radius (world units).
        extra: more keys for metrics.json (e.g. the input and device).
    """
    start = time.perf_counter()
    out = Path(out)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    params, deformation, config = result.params, result.deformation, result.config
    with torch.no_grad():
        def ply(g) -> bytes:
            return ply_bytes(g.means, g.sh0, g.opacity_logits, g.log_scales, g.quats, g.shN)

        write_bytes_atomic(out / "canonical.ply", ply(gaussians_at(params, None, 0.0)))
        for i, t in enumerate(frame_times):
            write_bytes_atomic(out / "frames" / f"{i:03d}.ply", ply(gaussians_at(params, deformation, float(t))))
    if deformation is not None:
        save_deformation(out / "deformation.safetensors", deformation.state_dict(), config.to_dict())
    viewmats, times = turntable_cameras(config, camera_distance, len(frame_times))
    Ks = torch.from_numpy(np.asarray(K)).float()[None].repeat(len(times), 1, 1)
    frames = result.render(viewmats, Ks, times, width, height, config.eval_background)
    write_mp4((frames.cpu().numpy() * 255).round().astype(np.uint8), out / "turntable.mp4", fps=12)
    evaluation = result.evaluate()
    if result.eval_split == "heldout":
        views = result.eval_views
        renders = result.render(views.viewmats, views.Ks, views.times, width, height, config.eval_background)
        inputs = composite(views.rgba, torch.tensor(config.eval_background, dtype=torch.float32))
        write_mp4(side_by_side(inputs, renders, HELDOUT_FPS), out / "heldout.mp4", fps=HELDOUT_FPS)
    result.timings["export"] = time.perf_counter() - start
    scores = {
        "psnr": evaluation["psnr"],
        "ssim": evaluation["ssim"],
        "lpips": evaluation["lpips"],
        "lpips_reason": None if evaluation["lpips"] is not None else NO_LPIPS_WEIGHTS,
        "background": list(config.eval_background),
        "views": evaluation["views"],
    }
    if result.eval_split == "training":
        scores = {"note": TRAINING_VIEWS_NOTE, **scores}
    metrics = {
        "evaluated_on": "held-out views" if result.eval_split == "heldout" else "training views",
        "heldout": scores if result.eval_split == "heldout" else None,
        **({"training_views": scores} if result.eval_split == "training" else {}),
        "loss": result.losses,
        "n_gaussians": int(params["means"].shape[0]),
        "backend": result.backend,
        "resumed_from_step": result.resumed_from,
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "history": result.history,
        "frames": len(frame_times),
        "config": config.to_dict(),
        **extra,
    }
    write_json_atomic(out / "metrics.json", metrics)  # json_safe: a perfect view's infinite PSNR becomes null
    return metrics


def load_reconstruction(out: Path, device: str | torch.device = "cpu") -> tuple[torch.nn.ParameterDict, DeformationField | None, ReconstructConfig]:
    """(canonical Gaussians, deformation field or None, config) from an output directory."""
    out = Path(out)
    ply = read_ply(out / "canonical.ply")
    deformation_path = out / "deformation.safetensors"
    if deformation_path.exists():
        state, config_dict = load_deformation(deformation_path)
    else:
        state, config_dict = None, json.loads((out / "metrics.json").read_text())["config"]
    config = ReconstructConfig.from_dict(config_dict)

    def cols(*names: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([ply[n] for n in names], -1))

    params = torch.nn.ParameterDict(
        {
            "means": torch.nn.Parameter(cols("x", "y", "z")),
            "scales": torch.nn.Parameter(cols("scale_0", "scale_1", "scale_2")),
            "quats": torch.nn.Parameter(cols("rot_0", "rot_1", "rot_2", "rot_3")),
            "opacities": torch.nn.Parameter(torch.from_numpy(ply["opacity"])),
            "sh0": torch.nn.Parameter(cols("f_dc_0", "f_dc_1", "f_dc_2")),
        }
    )
    if config.sh_degree > 0:
        params["shN"] = torch.nn.Parameter(sh_rest_from_columns(cols(*[f for f in PLY_FIELDS if f.startswith("f_rest_")]), config.sh_degree))
    params = params.to(device)
    if state is None:
        return params, None, config
    deformation = DeformationField(config.deformation)
    deformation.load_state_dict(state)
    return params, deformation.to(device), config
