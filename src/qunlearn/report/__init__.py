"""Stage 8, the report: LaTeX tables and figures."""
