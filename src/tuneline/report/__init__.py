"""Reports people look at: the HTML run report, plots, the dataset card, the markdown summary."""
