"""Figure makers registered with ``latticeml.figures`` (one module per topic)."""
