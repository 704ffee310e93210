"""d4d: Diffusion4D, complete (docs/architecture.md).

Every package of the project is imported through this namespace (``d4d.rendering``,
``d4d.curation``, ...); installing d4d claims no other top-level name. The modules directly
in ``d4d`` are the ground floor that every package may use: the paper's Eq. 1
(``d4d.measures``), atomic writes and JSON (``d4d.files``), command-line options generated
from config dataclasses (``d4d.options``), progress bars and the commands' console
(``d4d.progress``) and the checks applied to untrusted names and paths (``d4d.untrusted``). They import nothing from the packages above them.
"""

__version__ = "0.2.0"
