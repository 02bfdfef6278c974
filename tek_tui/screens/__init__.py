"""The console's screens: main run screen, plan picker, help and modals (one class per file)."""
