"""The compliance report: JSON, CSV and a self-contained HTML page."""
