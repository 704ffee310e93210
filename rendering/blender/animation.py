"""Find what animates a scene: actions (objects, armatures, shape keys), NLA strips, caches. Needs bpy."""

from __future__ import annotations

from d4d.rendering.blender.actions import animated_ids
from d4d.rendering.timeline import Span, fcurve_active_span, union_span


def _fcurves(action) -> list:
    """All F-curves of an action: slotted (layered) actions of Blender 4.4+ and legacy ones."""
    curves = []
    for layer in getattr(action, "layers", []):
        for strip in layer.strips:
            for bag in getattr(strip, "channelbags", []):
                curves.extend(bag.fcurves)
    if not curves and hasattr(action, "fcurves"):
        curves = list(action.fcurves)
    return curves


def action_span(action) -> tuple[Span | None, bool]:
    """(active span, cyclic) of an action; cyclic when a Cycles modifier repeats a curve forever."""
    spans, cyclic = [], False
    for fc in _fcurves(action):
        if fc.mute:
            continue
        if any(m.type == "CYCLES" for m in fc.modifiers):
            cyclic = True
        spans.append(fcurve_active_span([tuple(k.co) for k in fc.keyframe_points]))
    span = union_span(spans)
    if cyclic and span is not None:
        start, end = action.frame_range
        span = (min(span[0], float(start)), max(span[1], float(end)))
    return span, cyclic


def find_animation_sources(bpy) -> list[dict]:
    """Every animation source that plays: {kind, owner, name, span, cyclic}.

    Muted NLA tracks/strips (glTF's extra animations are stashed there) do not play and are
    listed with ``plays: False`` so a user can see them.
    """
    sources = []
    for idb in animated_ids(bpy):
        anim = idb.animation_data
        if anim is None:
            continue
        owner = idb.user.name if idb.__class__.__name__ == "Key" and idb.user else idb.name
        if anim.action is not None:
            span, cyclic = action_span(anim.action)
            sources.append({"kind": "action", "owner": owner, "name": anim.action.name, "span": span, "cyclic": cyclic, "plays": True})
        for track in anim.nla_tracks:
            for strip in track.strips:
                plays = not (track.mute or strip.mute)
                span = None
                if strip.action is not None and action_span(strip.action)[0] is not None:
                    span = (float(strip.frame_start), float(strip.frame_end))
                sources.append({"kind": "nla_strip", "owner": owner, "name": f"{track.name}/{strip.name}", "span": span, "cyclic": False, "plays": plays})
    scene = bpy.context.scene
    for cache in bpy.data.cache_files:
        sources.append(
            {"kind": "cache", "owner": cache.name, "name": cache.filepath, "span": (float(scene.frame_start), float(scene.frame_end)), "cyclic": False, "plays": True}
        )
    return sources


def animated_span(sources: list[dict]) -> Span | None:
    """Union of the spans of the sources that play."""
    return union_span([s["span"] for s in sources if s["plays"]])
