"""The ``secprivnode`` command line."""
