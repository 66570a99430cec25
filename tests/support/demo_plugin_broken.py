"""A plugin module that cannot be imported, for the catalogue's error handling."""

raise ImportError("demo plugin is broken on purpose")
