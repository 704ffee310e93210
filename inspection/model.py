"""What a report shows, independent of where it came from: items (cards), groups, plots, tables.

The readers (``inspection.curation_view``, ``training_view``, ``reconstruction_view``) build a
``Report``; ``inspection.page`` turns it into HTML. ``Report.index()`` is the JSON the page's
script pages through (one entry per item), so a data set of thousands of assets costs one
JSON parse, and only the 50 cards of the current page exist in the DOM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from d4d.files import json_safe
from d4d.inspection.media import Sprite


@dataclass
class Item:
    """One card: an asset, a validation sample or a reconstruction.

    Attributes:
        id: unique key (uid, step, directory name).
        title: first line of the card.
        status: "keep", "reject", "failed" or "" (colours the card; filterable).
        group: the group key it belongs to (a reject reason), or None.
        caption: free text shown under the videos (e.g. the Cap3D caption).
        detail: one line explaining the status.
        videos: (label, preview) pairs, shown side by side and played in lockstep.
        highlights: a few measures shown on the card itself, name -> value.
        measures: every measure, name -> JSON-safe value (shown in a collapsible table).
        parent: the item it belongs to (a clip's asset), or None; cards of one parent are shown
            together under its heading.
        parent_title: that heading (the asset's file name); None shows ``parent`` itself.
        hover: shown when the pointer rests on the card's title or its parent's heading (ids
            and content hashes, which names do not show).
    """

    id: str
    title: str
    status: str = ""
    group: str | None = None
    caption: str | None = None
    detail: str = ""
    videos: list[tuple[str, Sprite]] = field(default_factory=list)
    highlights: dict = field(default_factory=dict)
    measures: dict = field(default_factory=dict)
    parent: str | None = None
    parent_title: str | None = None
    hover: str = ""

    def to_json(self) -> dict:
        return json_safe({
            "id": self.id, "title": self.title, "status": self.status, "group": self.group, "caption": self.caption,
            "detail": self.detail, "videos": [{"label": label, **sprite.to_json()} for label, sprite in self.videos],
            "highlights": self.highlights, "measures": self.measures, "parent": self.parent,
            "parent_title": self.parent_title, "hover": self.hover,
        })


@dataclass
class Group:
    """A set of items shown together with a few examples (e.g. the rejects of one reason)."""

    key: str
    label: str
    description: str = ""


@dataclass
class Plot:
    """An inline SVG (``inspection.svg``) with a caption."""

    title: str
    svg: str
    note: str = ""


@dataclass
class Report:
    """Everything one page shows.

    Attributes:
        kind: "curation", "training" or "reconstruction".
        title: page title. source: the inspected path.
        summary: (label, value) pairs shown at the top.
        plots: distributions and curves.
        groups: item groups, with examples drawn from ``items`` (group order is display order).
        items: the cards, paged by the page's script.
        tables: title -> flat dict (e.g. a run's config).
        notes: lines about what could not be read, shown prominently.
        per_page: cards per page.
        examples_per_group: example cards shown per group.
    """

    kind: str
    title: str
    source: str
    summary: list[tuple[str, str]] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    tables: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    per_page: int = 50
    examples_per_group: int = 4

    def index(self) -> dict:
        """The JSON the page's script reads: items, and groups with the positions of their examples
        (items with previews first, then the others, in item order)."""
        positions: dict[str, list[int]] = {}
        for i, item in enumerate(self.items):
            if item.group is not None:
                positions.setdefault(item.group, []).append(i)
        groups = []
        for g in self.groups:
            members = positions.get(g.key, [])
            with_videos = [i for i in members if self.items[i].videos]  # examples with previews first
            examples = (with_videos + [i for i in members if not self.items[i].videos])[: self.examples_per_group]
            groups.append({"key": g.key, "label": g.label, "description": g.description, "count": len(members), "examples": examples})
        return {"kind": self.kind, "per_page": self.per_page, "groups": groups, "items": [item.to_json() for item in self.items]}
