"""A new stack's first files (``stack-builder init``): the spec, a root image with a real test, an optional model
image, the caller workflows of the reusable ones, a ``.gitignore`` and a README. Pure: it says what to write;
``apps.init`` writes it."""
