"""Commands that read an image already in the registry (`manifest`, `sbom`): one helper finds it."""
