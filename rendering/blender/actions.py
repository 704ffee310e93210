"""The clips of a multi-action asset: which actions play together, and making one of them play. Needs bpy.

A file can carry several animations (a character's Idle, Walk, Run, T-pose): glTF imports its
first animation as the active action and stashes the others in muted NLA tracks; FBX imports
each take as actions named ``<object>|<take>`` (the first take active, the others unassigned);
a .blend keeps actions in NLA tracks or as active actions. d4d names a *clip* after the
animation it plays (the glTF animation, the FBX take, the action) and binds every owner that
carries it (objects and shape-key sets). The *default* clip is what the file plays as imported.

``play_clip`` restores the imported state and then makes only the clip's actions play (every
owner's NLA tracks muted, owners outside the clip without an action), so a T-pose clip is
judged on its own, never taking a moving sibling with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from d4d.rendering.errors import AssetError


@dataclass
class Binding:
    """One owner (an object or a shape-key set) playing one action."""

    owner: object
    action: object


@dataclass
class Clip:
    """An animation that can play as one clip.

    Attributes:
        name: the glTF animation, FBX take or action name; None for a default clip whose playing
            actions have no single name.
        bindings: the owners and actions it plays (empty for the default clip).
        default: True for what the file plays as imported.
    """

    name: str | None
    bindings: list[Binding] = field(default_factory=list)
    default: bool = False


def animated_ids(bpy):
    """Everything that can carry an animation: objects and shape-key sets."""
    yield from bpy.data.objects
    yield from bpy.data.shape_keys


def _owner_name(idb) -> str:
    return idb.user.name if idb.__class__.__name__ == "Key" and idb.user else idb.name


def _clip_name(owner, action) -> str:
    """FBX names a take's action "<object>|<take>" (and Blender's FBX exporter names takes
    "<object>|<action>" already): the clip is the name with the owner's prefixes removed."""
    prefix = _owner_name(owner) + "|"
    name = action.name
    while name.startswith(prefix) and len(name) > len(prefix):
        name = name[len(prefix):]
    return name


def _unassigned_owner(bpy, action):
    """The object an action nobody plays belongs to: named by one of its slots ("OB<name>") or
    by FBX's "<object>|<take>" naming; None when it cannot be told."""
    for slot in getattr(action, "slots", []):
        if slot.target_id_type == "OBJECT" and slot.identifier[2:] in bpy.data.objects:
            return bpy.data.objects[slot.identifier[2:]]
    prefix = action.name.split("|", 1)[0]
    return bpy.data.objects.get(prefix) if "|" in action.name else None


class Snapshot:
    """The animation state of every owner as imported: active action, slot, and NLA mutes."""

    def __init__(self, bpy):
        self.states = []
        for idb in animated_ids(bpy):
            anim = idb.animation_data
            if anim is None:
                continue
            tracks = [(track, track.mute, [(strip, strip.mute) for strip in track.strips]) for track in anim.nla_tracks]
            self.states.append((idb, anim.action, getattr(anim, "action_slot", None), tracks))

    def restore(self) -> None:
        for idb, action, slot, tracks in self.states:
            anim = idb.animation_data
            anim.action = action
            if action is not None and slot is not None:
                anim.action_slot = slot
            for track, mute, strips in tracks:
                track.mute = mute
                for strip, strip_mute in strips:
                    strip.mute = strip_mute


def find_clips(bpy) -> list[Clip]:
    """The default clip, then every other animation by name (sorted), with their bindings."""
    bindings: list[tuple[Binding, bool]] = []
    for idb in animated_ids(bpy):
        anim = idb.animation_data
        if anim is None:
            continue
        if anim.action is not None:
            bindings.append((Binding(idb, anim.action), True))
        for track in anim.nla_tracks:
            for strip in track.strips:
                if strip.action is not None:
                    bindings.append((Binding(idb, strip.action), not (track.mute or strip.mute)))
    bound = {(b.owner.name, b.action.name) for b, _ in bindings}
    for action in bpy.data.actions:
        owner = _unassigned_owner(bpy, action)
        if owner is not None and (owner.name, action.name) not in bound:
            bindings.append((Binding(owner, action), False))
    by_name: dict[str, list[Binding]] = {}
    for binding, _ in bindings:
        group = by_name.setdefault(_clip_name(binding.owner, binding.action), [])
        if all((b.owner, b.action) != (binding.owner, binding.action) for b in group):
            group.append(binding)
    playing = {_clip_name(b.owner, b.action) for b, plays in bindings if plays}
    default_name = next(iter(playing)) if len(playing) == 1 else None
    clips = [Clip(default_name, by_name.get(default_name, []), default=True)]
    clips += [Clip(name, group) for name, group in sorted(by_name.items()) if name != default_name]
    return clips


def play_clip(bpy, snapshot: Snapshot, clip: Clip) -> None:
    """Make ``clip`` the only animation that plays (the default clip: restore the import)."""
    snapshot.restore()
    if clip.default:
        return
    members = {id(b.owner): b for b in clip.bindings}
    for idb in animated_ids(bpy):
        anim = idb.animation_data
        if anim is None:
            continue
        for track in anim.nla_tracks:
            track.mute = True
        if id(idb) not in members:
            anim.action = None
    for binding in clip.bindings:
        anim = binding.owner.animation_data or binding.owner.animation_data_create()
        anim.action = binding.action
        slots = list(getattr(binding.action, "slots", []))
        if slots and getattr(anim, "action_slot", None) is None:
            own = [s for s in slots if s.identifier[2:] == binding.owner.name]
            anim.action_slot = (own or slots)[0]


def clip_by_name(clips: list[Clip], name: str | None) -> Clip:
    """The clip called ``name`` (None: the default clip); AssetError naming the choices otherwise."""
    if name is None:
        return clips[0]
    for clip in clips:
        if clip.name == name:
            return clip
    available = ", ".join(repr(c.name) for c in clips if c.name is not None) or "none"
    raise AssetError("render_failed", f"no animation named {name!r} (animations: {available})")
