"""The inbound gateway: verifies what partners send and republishes it on the canonical streams."""
