"""One module per model family, each exporting ``SPEC`` (see ``pipelines.spec.ModelSpec``)."""
