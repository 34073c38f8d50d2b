"""A study's evaluation of its runs, one module per task family.

- `evaluate_run`: every figure of one finished run, and its convergence;
- `mlm`: held-out masked-LM loss and accuracy;
- `retrieval`: X -> pivot retrieval;
- `classification`: the probe on frozen embeddings, and fine-tuned classifiers;
- `tagging`: taggers fine-tuned per language (and the Scratch baseline);
- `embeddings`: sentence embeddings, centred per language.
"""
