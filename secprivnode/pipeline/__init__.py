"""The transaction pipeline: endorse proposals, validate ordered blocks, commit them."""
