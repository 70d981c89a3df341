"""tuneline: teach a foundation model your domain data, locally, end to end."""

__version__ = "0.1.0"
