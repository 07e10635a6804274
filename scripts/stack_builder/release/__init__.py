"""Release: what happens to published images: promotion and rollback through the gates, GPU gate runs, yanks."""
