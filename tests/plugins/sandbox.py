"""Fixtures that run the sandbox (simulated HighLevel) over real HTTP. Owned by the sandbox."""
