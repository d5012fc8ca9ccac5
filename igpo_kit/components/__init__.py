"""Facade modules, one per component kind; attribute access looks names up in the registry."""
