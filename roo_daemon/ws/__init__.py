"""The WebSocket stream: subscribe to events (with replay), answer asks."""
