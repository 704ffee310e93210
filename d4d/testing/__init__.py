"""Fixtures for d4d's tests and benchmarks: synthetic render directories, shards, clips, an
Objaverse cache layout, and Blender scenes written with real exporters. The top layer: it may
import every package; nothing in the library imports it."""
