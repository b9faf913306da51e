"""CLIP models from immich-layout bundles, run with onnxruntime and tokenizers (no torch)."""
