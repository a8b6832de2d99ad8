"""What the units do: ``analysis`` (gate saturation, LSTMVis unit selection; NumPy only) and
``plots`` (matplotlib figures, imported only when you import it)."""
