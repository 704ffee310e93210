"""d4d-reconstruct: explicit 4D Gaussians (canonical Gaussians + HexPlane deformation) from orbital videos.

Design note and layers: docs/reconstruction.md. Entry points: ``reconstruction.cli.main``
(the ``d4d-reconstruct`` command) and ``reconstruction.trainer.reconstruct`` (Python API).
"""
