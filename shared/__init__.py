"""The kernel every Obruten service uses the same way."""
