"""secprivnode package."""
