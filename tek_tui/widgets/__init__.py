"""The console's widgets, one class per file; import them from their modules."""
