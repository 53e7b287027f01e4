// The web UI (placeholder until the UI lands).
