"""YAML presets (``<family>_<task>.yaml``, ``debug``, ``full`` ...), shipped in the wheel as ``worldrl.configs``
package data so that an installed worldrl finds them too (``worldrl.loops.presets``)."""
