"""Networks: the one-step generators, the frozen feature encoders (and their registry), raydrift's MAE."""
