"""``spec.yml``: load, validate (all problems, each with file, line and key path), and model.

The graph of images lives here and only here; everything else derives from it. This module is the
package's front door; the work is done in small modules, one job each:

- ``loader``: find the file, refuse what is too big or not text, parse it (``yamlsource``), check its
  shape (``shape``, against ``spec.schema.json``);
- ``assemble``: per image, the checks of what it means (``checks``), its files confined to the stack
  (``confine``), then its values made (``construct``);
- ``images``: the immutable ``Spec`` and ``ImageSpec`` everything else reads; ``problems``: the messages.
"""
from __future__ import annotations

from stack_builder.spec.checks import MAX_DRIFT_SAMPLE, MAX_IMAGE_KEY, PREFIX_RE
from stack_builder.spec.images import (DEFAULT_PLATFORMS, ContentTag, DriftSettings, ImageSpec, InfoCmd, ModelSpec,
                                       Spec)
from stack_builder.spec.loader import MAX_SPEC_BYTES, SPEC_NAMES, find_spec, load_spec, parse_spec
from stack_builder.spec.shape import schema
from stack_builder.spec.timeouts import DEFAULT_TIMEOUTS, check_timeouts

__all__ = ["DEFAULT_PLATFORMS", "DEFAULT_TIMEOUTS", "MAX_DRIFT_SAMPLE", "MAX_IMAGE_KEY", "MAX_SPEC_BYTES", "PREFIX_RE",
           "SPEC_NAMES", "ContentTag", "DriftSettings", "ImageSpec", "InfoCmd", "ModelSpec", "Spec", "check_timeouts",
           "find_spec", "load_spec", "parse_spec", "schema"]
