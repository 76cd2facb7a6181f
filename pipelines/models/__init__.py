"""One package per model family, each exporting ``SPEC`` (see ``pipelines.spec.ModelSpec``)."""
