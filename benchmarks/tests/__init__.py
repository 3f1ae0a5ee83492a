"""The benchmarks' own tests: they import the harness (benchmarks.*), which the product's tests never do."""
