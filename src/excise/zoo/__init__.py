"""Built-in trained models and their recipes (above finetune and evaluation: recipes train and evaluate)."""
