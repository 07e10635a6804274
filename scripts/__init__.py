"""Image stack builder: spec -> tree -> plan -> build/test/push -> report."""
