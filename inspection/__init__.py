"""d4d-inspect: look at a curation output, a training run, an evaluation, a reconstruction or a sample in one HTML page.

Layers (docs/inspection.md): ``media`` (WebP sprite previews) and ``svg`` (plots) know nothing
of d4d; ``curation_data`` reads decisions, shards, render directories and video files;
``curation_view``, ``training_view`` (with ``autoencoder_view``), ``evaluation_view``,
``reconstruction_view`` and ``sample_view`` turn each kind into a ``model.Report``;
``page`` renders a Report as HTML + a small paging script; ``detect`` and ``report`` tie them
together; ``cli`` is the ``d4d-inspect`` command.
"""

from d4d.inspection.report import write_report

__all__ = ["write_report"]
