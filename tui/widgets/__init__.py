"""The console's own widgets: tables, bandwidth charts, progress lines, the top bar."""
