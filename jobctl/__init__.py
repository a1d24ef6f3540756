"""jobctl: a local job scheduler for HTTP requests, agent prompts and commands."""

__version__ = "0.1.0"
