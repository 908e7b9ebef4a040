"""Machine backends: what an instance is (a real machine, or a simulated record)."""
