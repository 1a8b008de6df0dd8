"""``koopsweep report``: collect results.json files into one table, summary tables and the paper's figures.

collect (files → flat rows) → tables (runs.csv, summary.md) and figures (matplotlib, no display needed).
"""
