"""The curation job on Ray: source -> fetch -> geometric pre-check -> fast pre-pass -> quality
render -> motion magnitude -> shards, resumable from its manifest (docs/pipeline.md).

Steps (``steps``) know nothing about Ray; ``ray_adapter`` maps them onto actors and ``runner``
drives them. ``curate`` is the ``d4d-curate`` command, ``demo`` the ``make demo`` entry point.
"""
