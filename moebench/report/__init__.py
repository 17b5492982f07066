"""Reports: ratios against references, aggregates, guarantee checks, figures, and the CSV,
LaTeX, Markdown and HTML writers behind ``moebench report``."""
