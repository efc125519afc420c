"""Audio I/O, features and effects shared by every method."""
