"""Framework-neutral building blocks: subscriber model mixins and signal dispatch."""
