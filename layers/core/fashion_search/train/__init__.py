"""Training and fine-tuning of the small demo CLIP (needs torch: ``pip install .[train]``).

Only the ``fashion-search model train`` command imports this package; the runtime never does.
"""
