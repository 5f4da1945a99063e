"""app_definitions package."""
