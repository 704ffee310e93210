"""d4d-inspect: look at a curation output, a training run or a reconstruction in one HTML page.

Layers (docs/inspection.md): ``media`` (WebP sprite previews) and ``svg`` (plots) know nothing
of d4d; ``curation_data`` reads decisions, shards and render directories; ``curation_view``,
``training_view`` and ``reconstruction_view`` turn each kind into a ``model.Report``;
``page`` renders a Report as HTML + a small paging script; ``detect`` and ``report`` tie them
together; ``cli`` is the ``d4d-inspect`` command.
"""

from d4d.inspection.report import write_report

__all__ = ["write_report"]
