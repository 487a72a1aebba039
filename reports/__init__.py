"""Turning result files into tables, plots and leaderboards."""
