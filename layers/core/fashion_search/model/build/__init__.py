"""Making model bundles (ONNX export, int8, pulling weights): tooling, not in the layer.

Needs the ``export`` extra (torch, open_clip, transformers) for the exporters. The runtime only
reads bundles: ``fashion_search.model.loader``.
"""
