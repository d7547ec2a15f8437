"""What the five systems share: data kinds, nn blocks, the runner, model folders, reports."""
