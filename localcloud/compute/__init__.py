"""The Compute Engine v1 REST subset: one module per resource family, plus shared helpers."""
