"""The EX-AI tool-validation suite's own files: results, script runs, prompts, watcher
observations, and its hand-kept issue checklists."""
