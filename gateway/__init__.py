"""WhiteBalloon messaging gateway: private one-to-one messages beside the main app."""
