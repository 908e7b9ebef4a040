"""localcloud: an embedded GCE-compatible cloud that boots instances as machines on this host."""
