"""The explanations: one record per method (``registry.py``), the math of each family, and
``explain``, which runs any of them by name; also diagnose, faithfulness, sanity checks."""
