"""What a trained model tells about a dataset: metrics, split predictions, label issues, reports and plots."""
